/* test_faults.c - disk faults under the real server: a full disk, I/O
 * errors and too many open files while it writes, syncs, rotates and
 * deletes queue files. fault_inject.c (LD_PRELOAD) makes the chosen system
 * call fail while a control file says so. In every case:
 *
 *   - a POST the fault refuses gets a 5xx (or 507) whose body is its exact
 *     payload, with Hopper-Error naming the error;
 *   - every POST that got a 202, before, during and after the fault, is
 *     delivered once, in order, and nothing refused ever is;
 *   - after a restart on the same data directory without faults, nothing
 *     consumed comes back and nothing accepted is missing.
 *
 * And crashes: a purge cut short, and a redrive killed on either side of
 * the rename that commits its batch (each message then in one channel). */
#include "harness.h"

#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_MESSAGES 256
#define TRIES_UNDER_FAULT 40 /* POSTs while a fault is on, at most */
#define REFUSALS 5           /* refused POSTs a lasting fault must give */

typedef struct fault_case {
    hs_server s;
    char dir[256];     /* the data directory */
    char aux[256];     /* the control and count files, outside it */
    char control[512]; /* HOPPER_FAULT_CONTROL */
    char count[512];   /* HOPPER_FAULT_COUNT */
    /* what the channel must hold, in order */
    char accepted[MAX_MESSAGES][256];
    int naccepted;
    int nrefused;
    /* the Hopper-Error a refused POST must carry while the fault is on:
     * "storage_full" (507) for a full file system, "io_error" (500) else */
    const char *refusal;
} fault_case;

static void write_file(const char *path, const char *text)
{
    /* a new file each time, so its mtime or size always changes */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

static long injected(const fault_case *fc)
{
    FILE *f = fopen(fc->count, "r");
    long n = 0;
    if (f) {
        if (fscanf(f, "%ld", &n) != 1)
            n = 0;
        fclose(f);
    }
    return n;
}

/* "name=" followed by ours and the caller's value of name joined by ':',
 * ours last if last, else first; ours alone if the caller has none.
 * OUT: entry. */
static void merge_env(char *entry, size_t size, const char *name, const char *ours, bool last)
{
    const char *theirs = getenv(name);
    int n;
    if (theirs == NULL || theirs[0] == '\0')
        n = snprintf(entry, size, "%s=%s", name, ours);
    else if (last)
        n = snprintf(entry, size, "%s=%s:%s", name, theirs, ours);
    else
        n = snprintf(entry, size, "%s=%s:%s", name, ours, theirs);
    assert_true(n > 0 && (size_t)n < size);
}

static void start_with_faults(fault_case *fc, const char *const *args)
{
    memset(fc, 0, sizeof *fc);
    assert_int_equal(hs_make_dir(fc->dir, sizeof fc->dir), 0);
    assert_int_equal(hs_make_dir(fc->aux, sizeof fc->aux), 0);
    snprintf(fc->control, sizeof fc->control, "%s/control", fc->aux);
    snprintf(fc->count, sizeof fc->count, "%s/count", fc->aux);
    write_file(fc->control, "");
    static char preload[1200], control[600], count[600], asan[1200];
    /* These replace the caller's LD_PRELOAD and ASAN_OPTIONS (harness.h),
     * so what the caller set is merged in: the injector first, and ASan's
     * options of the caller's, with the one the injector needs last (the
     * last of an option wins). The injector is not instrumented and comes
     * first: ASan must allow it. */
    merge_env(preload, sizeof preload, "LD_PRELOAD", FAULT_INJECT_LIB, false);
    merge_env(asan, sizeof asan, "ASAN_OPTIONS", "verify_asan_link_order=0", true);
    snprintf(control, sizeof control, "HOPPER_FAULT_CONTROL=%s", fc->control);
    snprintf(count, sizeof count, "HOPPER_FAULT_COUNT=%s", fc->count);
    const char *env[] = {preload, control, count, asan, NULL};
    hs_start_in_env_ok(&fc->s, fc->dir, args, env);
}

/* POST text; 202 adds it to what the channel must hold. Returns the status. */
static long post(fault_case *fc, const char *channel, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "/channels/%s", channel);
    hs_reply r = {0};
    assert_int_equal(hs_post(&fc->s, path, text, strlen(text), "text/plain", &r), 0);
    long status = r.status;
    if (status == 202) {
        assert_true(fc->naccepted < MAX_MESSAGES);
        snprintf(fc->accepted[fc->naccepted++], sizeof fc->accepted[0], "%s", text);
    } else {
        /* refused: the payload comes back, byte for byte, and says why */
        assert_true(status == 507 || status >= 500);
        assert_int_equal(r.len, strlen(text));
        assert_memory_equal(r.body, text, r.len);
        assert_string_equal(r.content_type, "text/plain");
        char code[64];
        assert_true(hs_header(&r, "Hopper-Error", code, sizeof code));
        if (strcmp(code, "out_of_memory") != 0) {
            assert_non_null(fc->refusal); /* no refusal but while a fault is on */
            assert_string_equal(code, fc->refusal);
            assert_int_equal(status, strcmp(code, "storage_full") == 0 ? 507 : 500);
        }
        if (status == 507)
            assert_true(hs_header(&r, "Retry-After", code, sizeof code));
        fc->nrefused++;
    }
    hs_reply_free(&r);
    return status;
}

static void post_many(fault_case *fc, const char *channel, const char *tag, int n, int pad)
{
    char text[256];
    for (int i = 0; i < n; i++) {
        snprintf(text, sizeof text, "%s-%03d-%0*d", tag, i, pad, 0);
        assert_int_equal(post(fc, channel, text), 202);
    }
}

/* With the fault on, POST until REFUSALS are refused or TRIES_UNDER_FAULT
 * were sent (a fault that fires once is then over); at least one must be. */
static void post_until_refused(fault_case *fc, const char *channel, const char *tag, int pad)
{
    int refused_before = fc->nrefused;
    char text[256];
    for (int i = 0; i < TRIES_UNDER_FAULT && fc->nrefused < refused_before + REFUSALS; i++) {
        snprintf(text, sizeof text, "%s-%03d-%0*d", tag, i, pad, 0);
        post(fc, channel, text);
    }
    assert_true(fc->nrefused > refused_before);
}

/* Take from channel exactly what it must hold, in order, and then nothing. */
static void expect_all(fault_case *fc, const char *channel, int from)
{
    for (int i = from; i < fc->naccepted; i++)
        hs_expect_get(&fc->s, channel, "5", fc->accepted[i]);
    hs_expect_nothing(&fc->s, channel, "0", NULL);
}

/* Stop, start again on the same directory without faults: the channel
 * holds exactly the accepted messages from index from on. */
static void restart_and_expect(fault_case *fc, const char *channel, int from)
{
    hs_stop_ok(&fc->s);
    hs_start_in_ok(&fc->s, fc->dir, NULL);
    expect_all(fc, channel, from);
}

static void finish(fault_case *fc)
{
    hs_stop_ok(&fc->s);
    hs_remove_tree(fc->dir);
    hs_remove_tree(fc->aux);
}

/* A fault while messages are appended to a queue file (memory 0: every
 * message goes to disk): refused, then the channel goes on. */
static void write_fault(const char *control, const char *refusal, const char *const *args)
{
    fault_case fc;
    start_with_faults(&fc, args);
    post_many(&fc, "w", "before", 8, 40);
    fc.refusal = refusal;
    write_file(fc.control, control);
    post_until_refused(&fc, "w", "during", 40);
    assert_true(injected(&fc) > 0);
    write_file(fc.control, "");
    post_many(&fc, "w", "after", 8, 40);
    expect_all(&fc, "w", 0);
    post_many(&fc, "w", "kept", 4, 40);
    restart_and_expect(&fc, "w", fc.naccepted - 4);
    printf("\"%.*s\": %ld fault(s) injected, %d POST(s) refused with their payload, %d "
           "accepted and delivered once\n",
           (int)strcspn(control, "\n"), control, injected(&fc), fc.nrefused, fc.naccepted);
    finish(&fc);
}

static const char *const disk_only[] = {"--memory-bytes", "0", NULL};

static void test_disk_full_while_writing(void **state)
{
    (void)state;
    write_fault("pwritev ENOSPC -1\n", "storage_full", disk_only);
}

static void test_io_error_while_writing(void **state)
{
    (void)state;
    write_fault("pwritev EIO -1\n", "io_error", disk_only);
}

/* The write fails (ENOSPC: the record may be partly written) and so does
 * cutting it off: the file is
 * sealed with junk at its end that must never be read. */
static void test_io_error_while_writing_and_cutting(void **state)
{
    (void)state;
    write_fault("pwritev ENOSPC 1\nftruncate EIO -1\n", "storage_full", disk_only);
}

/* Half a record reaches the file before the disk is full: it is cut off
 * (or, if that fails too, sealed away), never read as a message. */
static void test_disk_full_in_the_middle_of_a_record(void **state)
{
    (void)state;
    write_fault("pwritev PARTIAL -1\n", "storage_full", disk_only);
}

static void test_disk_full_in_the_middle_and_cut_fails(void **state)
{
    (void)state;
    write_fault("pwritev PARTIAL 1\nftruncate EIO -1\n", "storage_full", disk_only);
}

/* --durable: the sync fails, the POST is refused with its payload, the
 * records are cut off; later POSTs are synced and kept. */
static void test_io_error_while_syncing(void **state)
{
    (void)state;
    const char *args[] = {"--durable", NULL};
    write_fault("fdatasync EIO -1\n", "io_error", args);
}

/* --durable: the sync finds the file system full (as NFS or a thin volume
 * may say at sync time): a 507 storage_full with the payload, not a 500. */
static void test_disk_full_while_syncing(void **state)
{
    (void)state;
    const char *args[] = {"--durable", NULL};
    write_fault("fdatasync ENOSPC -1\n", "storage_full", args);
}

/* Rotation: a new queue file cannot be created (too many open files, or a
 * full disk) when the current one is full. */
static void rotate_fault(const char *control, const char *refusal)
{
    fault_case fc;
    const char *args[] = {"--memory-bytes", "0", "--file-bytes", "1KiB", NULL};
    start_with_faults(&fc, args);
    post_many(&fc, "r", "before", 12, 200); /* about 3 files */
    fc.refusal = refusal;
    write_file(fc.control, control);
    post_until_refused(&fc, "r", "during", 200);
    assert_true(injected(&fc) > 0);
    write_file(fc.control, "");
    post_many(&fc, "r", "after", 12, 200);
    expect_all(&fc, "r", 0);
    post_many(&fc, "r", "kept", 6, 200);
    restart_and_expect(&fc, "r", fc.naccepted - 6);
    printf("\"%.*s\" at rotation: %ld fault(s) injected, %d POST(s) refused with their "
           "payload, %d accepted and delivered once\n",
           (int)strcspn(control, "\n"), control, injected(&fc), fc.nrefused, fc.naccepted);
    finish(&fc);
}

static void test_too_many_open_files_at_rotation(void **state)
{
    (void)state;
    rotate_fault("openat EMFILE -1\n", "io_error");
}

static void test_disk_full_at_rotation(void **state)
{
    (void)state;
    rotate_fault("openat ENOSPC -1\n", "storage_full");
}

/* Delete: consumed files cannot be removed. Consuming goes on; after a
 * restart nothing consumed comes back and nothing else is missing. */
static void test_io_error_while_deleting(void **state)
{
    (void)state;
    fault_case fc;
    const char *args[] = {"--memory-bytes", "0", "--file-bytes", "1KiB", NULL};
    start_with_faults(&fc, args);
    post_many(&fc, "d", "msg", 24, 200);
    write_file(fc.control, "unlinkat EIO -1\n");
    for (int i = 0; i < 16; i++) /* finishes several files */
        hs_expect_get(&fc.s, "d", "5", fc.accepted[i]);
    assert_true(injected(&fc) > 0);
    /* stop with the fault still on: the close cannot remove them either */
    hs_stop_ok(&fc.s);
    write_file(fc.control, "");
    hs_start_in_ok(&fc.s, fc.dir, NULL);
    expect_all(&fc, "d", 16);
    finish(&fc);
}

/* A clean stop writes memory to disk in a new file renamed into place.
 * When that fails the messages in memory cannot be kept: the stop must not
 * pass for clean. It exits 1 and logs how many were lost; whatever it did
 * keep comes back after a restart. (--durable has nothing in memory.) */
static void stop_fault(const char *control)
{
    fault_case fc;
    start_with_faults(&fc, NULL);
    post_many(&fc, "m", "memory", 6, 10); /* all in memory */
    write_file(fc.control, control);
    char log[600];
    snprintf(log, sizeof log, "%s", fc.s.log_path);
    setenv("HOPPER_TEST_KEEP_LOGS", "1", 1); /* read below */
    int code = hs_stop(&fc.s);
    unsetenv("HOPPER_TEST_KEEP_LOGS");
    assert_true(injected(&fc) > 0);
    write_file(fc.control, "");
    assert_int_equal(code, 1);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    char line[1024];
    bool channel_line = false, total_line = false;
    while (fgets(line, sizeof line, f)) {
        channel_line |= strstr(line, "channel m: 6 message(s) LOST") != NULL;
        total_line |= strstr(line, "stopped: 6 message(s) LOST") != NULL;
    }
    fclose(f);
    unlink(log);
    assert_true(channel_line);
    assert_true(total_line);
    /* and the data directory is still good to start on */
    hs_start_in_ok(&fc.s, fc.dir, NULL);
    hs_expect_nothing(&fc.s, "m", "0", NULL);
    finish(&fc);
}

static void test_rename_fails_at_stop(void **state)
{
    (void)state;
    stop_fault("renameat EIO -1\n");
}

static void test_disk_full_at_stop(void **state)
{
    (void)state;
    stop_fault("pwritev ENOSPC -1\n");
}

/* A purge (DELETE /channels/NAME/messages) that an I/O error stops as it
 * removes the oldest queue file, then a crash (SIGKILL): what comes back
 * is the newest part of the channel, whole and in order, none twice. */
static void test_purge_cut_short(void **state)
{
    (void)state;
    fault_case fc;
    const char *args[] = {"--memory-bytes", "2KiB", "--file-bytes", "4KiB", NULL};
    start_with_faults(&fc, args);
    enum { N = 60 };
    char texts[N][256];
    for (int i = 0; i < N; i++) {
        snprintf(texts[i], sizeof texts[i], "purge %02d %0200d", i, 0);
        assert_int_equal(post(&fc, "c", texts[i]), 202);
    }
    assert_true(hs_status_value(&fc.s, "c", "disk_files") > 2);
    write_file(fc.control, "unlinkat EIO 1\n");
    hs_reply r;
    assert_int_equal(hs_request(&fc.s, "DELETE", "/channels/c/messages", NULL, 0, NULL, &r), 0);
    assert_true(hs_is_error(&r, 500, "io_error"));
    hs_reply_free(&r);
    assert_int_equal(injected(&fc), 1);
    write_file(fc.control, "");
    assert_int_equal(hs_stop_with(&fc.s, SIGKILL), -1); /* died of the signal */

    hs_start_in_ok(&fc.s, fc.dir, args);
    int first = -1, got = 0;
    char body[300];
    while (hs_get_text(&fc.s, "c", "0", body, sizeof body) == 200) {
        int i;
        assert_int_equal(sscanf(body, "purge %d", &i), 1);
        if (first < 0)
            first = i;
        assert_int_equal(i, first + got); /* in order, none twice, no gap */
        assert_string_equal(body, texts[i]);
        got++;
    }
    assert_true(got > 0 && got < N);
    assert_int_equal(first + got, N); /* the newest */
    hs_stop_ok(&fc.s);
    hs_remove_tree(fc.dir);
    hs_remove_tree(fc.aux);
}

/* A redrive killed just before, or just after, the rename that commits
 * its batch: after the restart each message is in exactly one of the two
 * channels, in order (before: all still dead letters; after: all moved). */
static void redrive_killed(const char *control, bool moved)
{
    fault_case fc;
    const char *args[] = {"--memory-bytes", "0", NULL}; /* every message in a queue file */
    start_with_faults(&fc, args);
    enum { DEAD = 10, LIVE = 3 };
    char texts[DEAD + LIVE][64];
    for (int i = 0; i < DEAD + LIVE; i++) {
        snprintf(texts[i], sizeof texts[i], "%s %02d", i < DEAD ? "dead" : "live", i);
        assert_int_equal(post(&fc, i < DEAD ? "jobs.dead" : "jobs", texts[i]), 202);
    }
    write_file(fc.control, control);
    hs_reply r = {0};
    assert_int_not_equal(hs_request(&fc.s, "POST", "/channels/jobs/redrive", NULL, 0, NULL, &r),
                         0); /* no answer: the server died */
    hs_reply_free(&r);
    assert_int_equal(injected(&fc), 1);
    write_file(fc.control, "");
    assert_int_equal(hs_stop_with(&fc.s, SIGKILL), -1);

    hs_start_in_ok(&fc.s, fc.dir, args);
    char body[64];
    for (int i = DEAD; i < DEAD + LIVE; i++) { /* what jobs had comes first */
        assert_int_equal(hs_get_text(&fc.s, "jobs", "0", body, sizeof body), 200);
        assert_string_equal(body, texts[i]);
    }
    const char *holder = moved ? "jobs" : "jobs.dead";
    for (int i = 0; i < DEAD; i++) {
        assert_int_equal(hs_get_text(&fc.s, holder, "0", body, sizeof body), 200);
        assert_string_equal(body, texts[i]);
    }
    assert_int_equal(hs_get_text(&fc.s, "jobs", "0", body, sizeof body), 204);
    assert_int_equal(hs_get_text(&fc.s, "jobs.dead", "0", body, sizeof body), 204);
    hs_stop_ok(&fc.s);
    hs_remove_tree(fc.dir);
    hs_remove_tree(fc.aux);
}

static void test_redrive_killed_before_commit(void **state)
{
    (void)state;
    redrive_killed("renameat KILL 1\n", false);
}

static void test_redrive_killed_after_commit(void **state)
{
    (void)state;
    redrive_killed("renameat KILLAFTER 1\n", true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disk_full_while_writing),
        cmocka_unit_test(test_io_error_while_writing),
        cmocka_unit_test(test_io_error_while_writing_and_cutting),
        cmocka_unit_test(test_disk_full_in_the_middle_of_a_record),
        cmocka_unit_test(test_disk_full_in_the_middle_and_cut_fails),
        cmocka_unit_test(test_io_error_while_syncing),
        cmocka_unit_test(test_disk_full_while_syncing),
        cmocka_unit_test(test_too_many_open_files_at_rotation),
        cmocka_unit_test(test_disk_full_at_rotation),
        cmocka_unit_test(test_io_error_while_deleting),
        cmocka_unit_test(test_rename_fails_at_stop),
        cmocka_unit_test(test_disk_full_at_stop),
        cmocka_unit_test(test_purge_cut_short),
        cmocka_unit_test(test_redrive_killed_before_commit),
        cmocka_unit_test(test_redrive_killed_after_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
