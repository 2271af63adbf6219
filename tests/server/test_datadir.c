/* test_datadir.c - the data directory's rules (server/datadir.c): created
 * with mode 0700 and marked with hopper.lock; locked against a second
 * hopper; a directory with foreign entries and no hopper.lock refused and
 * left untouched, one with only channel directories and lost+found
 * adopted; ignored entries in a marked one; another layout refused; another
 * owner, no write permission and a full disk refused with exit 1 and a
 * message that says what to do. The tests that need root (chown, setpriv,
 * mount) skip without it. */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define LOCK_CONTENT "hopper data directory, layout 1\n"
#define NOBODY 65534 /* the uid and gid of the user that owns nothing */

/* ---- fixtures: a temporary directory per test, removed afterwards ---- */

typedef struct fixture {
    char dir[256];
    char mounted[300]; /* a tmpfs to unmount first, "" if none */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL || hs_make_dir(f->dir, sizeof f->dir) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->mounted[0])
        umount2(f->mounted, MNT_DETACH);
    hs_remove_tree(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ---- */

/* path = dir/name (name may be NULL for dir itself). */
static void join(char *path, size_t size, const char *dir, const char *name)
{
    int n = snprintf(path, size, "%s%s%s", dir, name ? "/" : "", name ? name : "");
    assert_true(n > 0 && (size_t)n < size);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    join(path, sizeof path, dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void make_dir(const char *dir, const char *name)
{
    char path[512];
    join(path, sizeof path, dir, name);
    assert_int_equal(mkdir(path, 0755), 0);
}

/* mkdir parent/name 0700, a data directory. OUT: data, its path. */
static void make_data_dir(char *data, size_t size, const char *parent, const char *name)
{
    join(data, size, parent, name);
    assert_int_equal(mkdir(data, 0700), 0);
}

static bool exists(const char *dir, const char *name)
{
    char path[512];
    struct stat st;
    join(path, sizeof path, dir, name);
    return lstat(path, &st) == 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One line for entry name of dir: name, type and mode, owner, size,
 * modification time; new, free(). */
static char *entry(const char *dir, const char *name)
{
    char path[512], *line;
    struct stat st;
    join(path, sizeof path, dir, name);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(asprintf(&line, "%s %o %u %lld %lld.%09ld\n", name, (unsigned)st.st_mode,
                         (unsigned)st.st_uid, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                         st.st_mtim.tv_nsec) > 0);
    return line;
}

/* What dir holds, the entry() of each, sorted; new, free(). Equal listings
 * mean nothing in dir was created, removed, written or chowned. */
static char *listing(const char *dir)
{
    char *lines[64];
    size_t n = 0, total = 1;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        assert_true(n < sizeof lines / sizeof lines[0]);
        lines[n] = entry(dir, e->d_name);
        total += strlen(lines[n++]);
    }
    closedir(d);
    qsort(lines, n, sizeof *lines, by_name);
    char *text = calloc(1, total);
    for (size_t i = 0; i < n; i++) {
        strcat(text, lines[i]);
        free(lines[i]);
    }
    return text;
}

/* Run hopper on data_dir (behind command, if not NULL) and expect it to
 * refuse: exit 1 with text in its output, before listening. */
static void expect_refusal_as(const char *const *command, const char *data_dir, const char *text)
{
    const char *args[] = {"--listen", "127.0.0.1:0", "--data-dir", data_dir, NULL};
    int code = -2;
    char *output = NULL;
    assert_int_equal(hs_run_as(command, args, NULL, &code, &output), 0);
    if (code != 1 || strstr(output, text) == NULL || strstr(output, "listening on"))
        fail_msg("--data-dir %s: exit %d (expected 1 with '%s'), output:\n%s", data_dir, code, text,
                 output);
    free(output);
}

static void expect_refusal(const char *data_dir, const char *text)
{
    expect_refusal_as(NULL, data_dir, text);
}

/* As expect_refusal, and nothing in data_dir changed. */
static void expect_untouched_refusal(const char *data_dir, const char *text)
{
    char *before = listing(data_dir);
    expect_refusal(data_dir, text);
    char *after = listing(data_dir);
    assert_string_equal(after, before);
    free(before);
    free(after);
}

/* ---- tests ---- */

static void test_new_dir_is_private_and_marked(void **state)
{
    fixture *f = *state;
    char data[300];
    join(data, sizeof data, f->dir, "a/b");
    hs_server s;
    hs_start_in_ok(&s, data, NULL);
    struct stat st;
    assert_int_equal(stat(data, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char lock[400];
    join(lock, sizeof lock, data, "hopper.lock");
    FILE *in = fopen(lock, "r");
    assert_non_null(in);
    char text[100] = "";
    assert_non_null(fgets(text, sizeof text, in));
    fclose(in);
    assert_string_equal(text, LOCK_CONTENT);
    hs_stop_ok(&s);
    /* it stays (it marks the directory), and the probe is gone */
    assert_true(exists(data, "hopper.lock"));
    assert_false(exists(data, "hopper+probe"));
    /* a trailing slash is the same directory, made 0700 all the same */
    char other[300];
    join(other, sizeof other, f->dir, "c/");
    hs_start_in_ok(&s, other, NULL);
    hs_stop_ok(&s);
    join(other, sizeof other, f->dir, "c");
    assert_int_equal(stat(other, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
}

static void test_second_hopper_is_refused(void **state)
{
    fixture *f = *state;
    hs_server s;
    hs_start_in_ok(&s, f->dir, NULL);
    hs_expect_post(&s, "jobs", "x", 202);
    expect_untouched_refusal(f->dir, "data dir is in use by another hopper (pid unknown)");
    /* the first one did not notice */
    hs_expect_get(&s, "jobs", "0", "x");
    hs_stop_ok(&s);
    /* and once it has stopped, the directory is free */
    hs_start_in_ok(&s, f->dir, NULL);
    hs_stop_ok(&s);
}

static void test_foreign_entries_are_refused(void **state)
{
    fixture *f = *state;
    /* each alone, beside a channel directory, in a directory without hopper.lock */
    static const struct {
        const char *name;
        char kind; /* 'f' file, 'd' directory, 'l' symbolic link to a directory */
    } foreign[] = {
        {"notes.txt", 'f'},   /* not a channel name */
        {"jobs", 'f'},        /* a channel name, but a file */
        {"old backup", 'd'},  /* a directory, not a channel name */
        {"elsewhere", 'l'},   /* a channel name, but a link */
        {"lost+found", 'f'},  /* lost+found is only a directory */
        {".hidden", 'f'},     /* a dot file is not ours either */
        {"hopper.lock", 'd'}, /* the lock file's name, but a directory */
    };
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        char data[300], path[600], name[32];
        snprintf(name, sizeof name, "case%zu", i);
        make_data_dir(data, sizeof data, f->dir, name);
        make_dir(data, "keep");
        join(path, sizeof path, data, foreign[i].name);
        if (foreign[i].kind == 'f')
            write_file(data, foreign[i].name, "not hopper's\n");
        else if (foreign[i].kind == 'd')
            assert_int_equal(mkdir(path, 0755), 0);
        else
            assert_int_equal(symlink(f->dir, path), 0);
        char expected[300];
        snprintf(expected, sizeof expected, "'%s' is neither a channel directory nor lost+found",
                 foreign[i].name);
        expect_untouched_refusal(data, expected); /* no hopper.lock made either */
    }
    /* the first foreign entry by name is the one named */
    char data[300];
    make_data_dir(data, sizeof data, f->dir, "several");
    write_file(data, "zebra", "");
    write_file(data, "apple.txt", "");
    expect_untouched_refusal(data, "'apple.txt'");
}

static void test_channel_dirs_and_lost_found_are_adopted(void **state)
{
    fixture *f = *state;
    char data[300];
    /* lost+found alone: an empty file system, as good as empty */
    make_data_dir(data, sizeof data, f->dir, "fresh");
    make_dir(data, "lost+found");
    hs_server s;
    hs_start_in_ok(&s, data, NULL);
    assert_true(exists(data, "hopper.lock"));
    hs_stop_ok(&s);
    assert_true(exists(data, "lost+found"));

    /* channel directories of an earlier hopper: adopted, and opened (an
     * empty one is not kept: its directory goes) */
    make_data_dir(data, sizeof data, f->dir, "old");
    make_dir(data, "jobs");
    make_dir(data, "lost+found");
    hs_start_in_ok(&s, data, NULL);
    assert_true(hs_log_wait(&s, "has 1 channel directory and no hopper.lock", 0));
    assert_true(hs_log_wait(&s, "1 empty one(s) removed", 0));
    assert_true(exists(data, "hopper.lock"));
    assert_false(exists(data, "jobs"));
    assert_int_equal(hs_status_value(&s, "jobs", "messages"), -1);
    hs_stop_ok(&s);
}

static void test_marked_dir_ignores_foreign_entries(void **state)
{
    fixture *f = *state;
    write_file(f->dir, "hopper.lock", LOCK_CONTENT);
    write_file(f->dir, "notes.txt", "mine\n");
    make_dir(f->dir, "old backup");
    make_dir(f->dir, "jobs");
    const char *kept[] = {"hopper.lock", "notes.txt", "old backup"}; /* jobs is hopper's */
    char *before[3];
    for (size_t i = 0; i < 3; i++)
        before[i] = entry(f->dir, kept[i]);
    hs_server s;
    hs_start_in_ok(&s, f->dir, NULL);
    assert_true(hs_log_wait(&s, "ignoring 'notes.txt', which is not a channel directory", 0));
    assert_true(hs_log_wait(&s, "ignoring 'old backup'", 0));
    assert_true(hs_log_wait(&s, "1 empty one(s) removed", 0));
    hs_stop_ok(&s);
    for (size_t i = 0; i < 3; i++) {
        char *after = entry(f->dir, kept[i]);
        assert_string_equal(after, before[i]);
        free(after);
        free(before[i]);
    }
}

static void test_lock_file_of_another_kind_is_refused(void **state)
{
    fixture *f = *state;
    write_file(f->dir, "hopper.lock", "hopper data directory, layout 2\n");
    expect_untouched_refusal(f->dir, "layout 2, which this hopper");
    write_file(f->dir, "hopper.lock", "something else entirely\n");
    expect_untouched_refusal(f->dir, "is not a hopper lock file");
    /* the line without its newline, or with more after it: still ours */
    write_file(f->dir, "hopper.lock", "hopper data directory, layout 1");
    hs_server s;
    hs_start_in_ok(&s, f->dir, NULL);
    hs_stop_ok(&s);
    write_file(f->dir, "hopper.lock", LOCK_CONTENT "written by hand\n");
    hs_start_in_ok(&s, f->dir, NULL);
    hs_stop_ok(&s);
    /* empty, as a crash right after creating it leaves it: filled in */
    write_file(f->dir, "hopper.lock", "");
    hs_start_in_ok(&s, f->dir, NULL);
    hs_stop_ok(&s);
    char lock[400];
    join(lock, sizeof lock, f->dir, "hopper.lock");
    struct stat st;
    assert_int_equal(stat(lock, &st), 0);
    assert_int_equal(st.st_size, strlen(LOCK_CONTENT));
}

static void test_other_owner_is_refused(void **state)
{
    fixture *f = *state;
    if (geteuid() != 0)
        skip(); /* only root can give a directory away */
    char data[300], expected[600];
    make_data_dir(data, sizeof data, f->dir, "theirs");
    assert_int_equal(chown(data, NOBODY, NOBODY), 0);
    snprintf(expected, sizeof expected,
             "--data-dir %s is owned by uid %d, but hopper runs as uid 0", data, NOBODY);
    expect_untouched_refusal(data, expected);
    assert_false(exists(data, "hopper.lock"));

    /* a channel directory of another user in our directory */
    make_data_dir(data, sizeof data, f->dir, "ours");
    make_dir(data, "jobs");
    char channel[400];
    join(channel, sizeof channel, data, "jobs");
    assert_int_equal(chown(channel, NOBODY, NOBODY), 0);
    snprintf(expected, sizeof expected, "channel directory %s is owned by uid %d", channel, NOBODY);
    expect_untouched_refusal(data, expected);
    assert_false(exists(data, "hopper.lock"));
}

static const char *const as_nobody[] = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                                        "--clear-groups", NULL};

/* True if hopper can be run as uid 65534 here: root, setpriv, and a build
 * directory that user may enter. */
static bool can_run_as_nobody(void)
{
    if (geteuid() != 0 || access(as_nobody[0], X_OK) != 0)
        return false;
    const char *args[] = {"--help", NULL};
    int code = -2;
    char *output = NULL;
    bool ok = hs_run_as(as_nobody, args, NULL, &code, &output) == 0 && code == 0;
    if (!ok)
        fprintf(stderr, "cannot run hopper as uid %d (exit %d): %s\n", NOBODY, code,
                output ? output : "");
    free(output);
    return ok;
}

static void test_unwritable_dir_is_refused(void **state)
{
    fixture *f = *state;
    if (!can_run_as_nobody())
        skip();
    /* the temporary parent is 0700: let the other user through to the cases */
    assert_int_equal(chmod(f->dir, 0755), 0);

    /* root's directory, open to all for reading: refused as not its own */
    char data[300], expected[600];
    join(data, sizeof data, f->dir, "roots");
    assert_int_equal(mkdir(data, 0755), 0);
    expect_refusal_as(as_nobody, data, "is owned by uid 0, but hopper runs as uid 65534");
    assert_false(exists(data, "hopper.lock"));

    /* its own, but read-only (0555): refused as not writable */
    join(data, sizeof data, f->dir, "readonly");
    assert_int_equal(mkdir(data, 0555), 0);
    assert_int_equal(chown(data, NOBODY, NOBODY), 0);
    snprintf(expected, sizeof expected, "--data-dir %s is not writable by uid %d", data, NOBODY);
    expect_refusal_as(as_nobody, data, expected);
    assert_false(exists(data, "hopper.lock"));
}

/* Mount a tmpfs of size (a mount option, "16k") at f->dir/mnt, to be
 * unmounted by the teardown; the test is skipped where mounting is not
 * allowed. OUT: mnt. */
static void mount_tmpfs(fixture *f, const char *size, char *mnt, size_t mnt_size)
{
    if (hs_mount_tmpfs(f->dir, "mnt", size, mnt, mnt_size) != 0)
        skip();
    snprintf(f->mounted, sizeof f->mounted, "%s", mnt);
}

static void test_full_disk_is_refused(void **state)
{
    fixture *f = *state;
    char mnt[300];
    mount_tmpfs(f, "16k", mnt, sizeof mnt);
    char data[400], marked[400];
    make_data_dir(data, sizeof data, mnt, "data");
    make_data_dir(marked, sizeof marked, mnt, "marked");
    write_file(marked, "hopper.lock", LOCK_CONTENT);

    /* fill the file system beside the data directories */
    char fill[500];
    join(fill, sizeof fill, mnt, "fill");
    int fd = open(fill, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    static const char page[4096];
    for (int i = 0; i < 64 && write(fd, page, sizeof page) > 0;)
        i++;
    close(fd);
    fd = open(fill, O_WRONLY | O_APPEND);
    assert_int_equal(write(fd, page, sizeof page), -1);
    assert_int_equal(errno, ENOSPC);
    close(fd);

    /* a new data directory: the lock file cannot be written, and is removed */
    expect_untouched_refusal(data, "no space left on device in --data-dir");
    assert_false(exists(data, "hopper.lock"));
    /* a marked one: the lock is taken, the probe cannot be written */
    expect_untouched_refusal(marked, "no space left on device in --data-dir");
    assert_false(exists(marked, "hopper+probe"));
}

/* Message n of channel c: its name and number, then the channel's letter. */
static void make_body(char *body, size_t len, int c, int n)
{
    memset(body, 'a' + c, len);
    snprintf(body, len, "c%d-%05d", c, n);
}

/* The file system fills up while hopper runs, partly by another process:
 * every POST that finds no room is a 507 storage_full with its payload
 * and Retry-After (not a 500), nothing accepted is lost or reordered, the
 * channels take messages again once room is made, a SIGTERM exits 0, and
 * a restart delivers every accepted message exactly once, in order. */
static void test_full_file_system_is_a_507_that_loses_nothing(void **state)
{
    enum { CHANNELS = 3, TRIES = 1200, REFUSALS = 12, BODY = 8192 };
    fixture *f = *state;
    char mnt[300];
    mount_tmpfs(f, "4m", mnt, sizeof mnt);
    char data[400], filler[400];
    make_data_dir(data, sizeof data, mnt, "data");
    join(filler, sizeof filler, mnt, "filler");
    /* memory 0: every message goes to a queue file; the files allowed
     * (64 x 256 KiB a channel) are far more than the file system holds;
     * the reserve for a stop is small (256 KiB + 4 x 8 KiB) */
    const char *args[] = {"--memory-bytes",
                          "0",
                          "--file-bytes",
                          "256KiB",
                          "--memory-limit",
                          "256KiB",
                          "--max-channels",
                          "4",
                          NULL};
    hs_server s;
    hs_start_in_ok(&s, data, args);

    /* another process takes half of the file system */
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    static char page[64 << 10];
    for (int i = 0; i < 32; i++)
        assert_int_equal(write(fd, page, sizeof page), (ssize_t)sizeof page);
    close(fd);

    static char body[BODY];
    int accepted[CHANNELS] = {0}, refused = 0, i;
    for (i = 0; i < TRIES && refused < REFUSALS; i++) {
        int c = i % CHANNELS;
        char path[64];
        snprintf(path, sizeof path, "/channels/c%d", c);
        make_body(body, sizeof body, c, accepted[c]);
        hs_reply r = {0};
        assert_int_equal(hs_post(&s, path, body, sizeof body, "application/octet-stream", &r), 0);
        if (r.status == 202) {
            accepted[c]++;
        } else {
            char value[64];
            assert_int_equal(r.status, 507);
            assert_true(hs_header(&r, "Hopper-Error", value, sizeof value));
            assert_string_equal(value, "storage_full");
            assert_true(hs_header(&r, "Retry-After", value, sizeof value));
            assert_int_equal(r.len, sizeof body);
            assert_memory_equal(r.body, body, sizeof body);
            refused++;
        }
        hs_reply_free(&r);
    }
    assert_int_equal(refused, REFUSALS); /* the file system did fill up */
    int before = accepted[0] + accepted[1] + accepted[2];
    assert_true(before > 100); /* about 2 MiB of 8 KiB messages went in first */

    /* room again: every channel takes messages again */
    assert_int_equal(unlink(filler), 0);
    for (int c = 0; c < CHANNELS; c++) {
        for (int k = 0; k < 4; k++) {
            char path[64];
            snprintf(path, sizeof path, "/channels/c%d", c);
            make_body(body, sizeof body, c, accepted[c]++);
            hs_expect_post_bytes(&s, path + strlen("/channels/"), body, sizeof body,
                                 "application/octet-stream", 202);
        }
    }
    hs_stop_ok(&s); /* exit 0: nothing was lost */
    hs_start_in_ok(&s, data, args);
    for (int c = 0; c < CHANNELS; c++) {
        char path[64];
        snprintf(path, sizeof path, "/channels/c%d?wait=5", c);
        for (int n = 0; n < accepted[c]; n++) {
            make_body(body, sizeof body, c, n);
            hs_reply r = {0};
            assert_int_equal(hs_get(&s, path, &r), 0);
            assert_int_equal(r.status, 200);
            assert_int_equal(r.len, sizeof body);
            assert_memory_equal(r.body, body, sizeof body);
            hs_reply_free(&r);
        }
        snprintf(path, sizeof path, "c%d", c);
        hs_expect_nothing(&s, path, "0", NULL);
    }
    printf("tmpfs of 4 MiB, half taken by another file: %d POSTs accepted, %d refused with 507 "
           "storage_full and their payload, %d more after room was made, all delivered once in "
           "order after a restart\n",
           before, refused, 4 * CHANNELS);
    hs_stop_ok(&s);
}

int main(void)
{
#define T(test) cmocka_unit_test_setup_teardown(test, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_new_dir_is_private_and_marked),
        T(test_second_hopper_is_refused),
        T(test_foreign_entries_are_refused),
        T(test_channel_dirs_and_lost_found_are_adopted),
        T(test_marked_dir_ignores_foreign_entries),
        T(test_lock_file_of_another_kind_is_refused),
        T(test_other_owner_is_refused),
        T(test_unwritable_dir_is_refused),
        T(test_full_disk_is_refused),
        T(test_full_file_system_is_a_507_that_loses_nothing),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
