/* test_budget.c - the server-wide budget (server/budget.c, reserve.c):
 * --memory-limit bounds the RAM of all channels together (peak RSS read
 * from /proc/PID/status), --disk-limit bounds their queue files (507
 * storage_full with the payload), the reserve file keeps room for a clean
 * stop however full the file system gets (a small tmpfs, filled by this
 * process while hopper runs), a start without room for it exits 1, and
 * /status, /metrics and /readyz say what the budget holds. Every accepted
 * message is then delivered exactly once, in order, after a restart. */
#include "harness.h"

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

#define KIB 1024LL
#define MIB (1024 * KIB)
#define RESERVE_PER_CHANNEL (8 * KIB) /* server/options.h */

/* ---- a data directory in a tmpfs in the test's directory ---- */

/* A data directory "data" in a tmpfs of size in dir (hs_dir_setup()'s,
 * whose teardown unmounts it). OUT: data. */
static void tmpfs_data_dir(const char *dir, const char *size, char *data, size_t data_size)
{
    char mnt[300];
    if (hs_mount_tmpfs(dir, HS_TMPFS_NAME, size, mnt, sizeof mnt) != 0)
        skip();
    snprintf(data, data_size, "%s/data", mnt);
    assert_int_equal(mkdir(data, 0700), 0);
}

/* ---- messages: channel c's message n, checked on the way back ---- */

static void make_body(char *body, size_t len, int c, int n)
{
    memset(body, 'a' + c % 26, len);
    snprintf(body, len, "c%d-%06d", c, n);
}

static void channel_name(char *out, size_t size, int c)
{
    snprintf(out, size, "c%d", c);
}

/* POST channel c's message n of len bytes. Returns the status; a 507 must
 * give the payload back, byte for byte, with Retry-After, and its
 * Hopper-Error goes to error (64 bytes). */
static long post_message(const hs_server *s, int c, int n, size_t len, char *error)
{
    char *body = malloc(len);
    assert_non_null(body);
    make_body(body, len, c, n);
    char path[64];
    snprintf(path, sizeof path, "/channels/c%d", c);
    hs_reply r = {0};
    assert_int_equal(hs_post(s, path, body, len, "application/octet-stream", &r), 0);
    error[0] = '\0';
    if (r.status == 507) {
        char value[64];
        assert_true(hs_header(&r, "Hopper-Error", error, 64));
        assert_true(hs_header(&r, "Retry-After", value, sizeof value));
        assert_int_equal(r.len, len);
        assert_memory_equal(r.body, body, len);
    }
    long status = r.status;
    hs_reply_free(&r);
    free(body);
    return status;
}

/* Take channel c's messages 0..count-1 (len bytes each), in order, and
 * find nothing after them. */
static void expect_all(const hs_server *s, int c, int count, size_t len)
{
    char *want = malloc(len);
    assert_non_null(want);
    char path[64], name[16];
    snprintf(path, sizeof path, "/channels/c%d?wait=5", c);
    for (int n = 0; n < count; n++) {
        make_body(want, len, c, n);
        hs_reply r = {0};
        assert_int_equal(hs_get(s, path, &r), 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.len, len);
        assert_memory_equal(r.body, want, len);
        hs_reply_free(&r);
    }
    free(want);
    channel_name(name, sizeof name, c);
    hs_expect_nothing(s, name, "0", NULL);
}

/* POST messages of len bytes to channels 0..channels-1 in turn, counting
 * each channel's accepted ones in accepted[], until refusals POSTs were
 * refused, each a 507 storage_full with its payload, or tries were made.
 * Returns how many were refused. */
static int flood(const hs_server *s, int channels, int *accepted, size_t len, int refusals,
                 int tries)
{
    int refused = 0;
    char error[64];
    for (int i = 0; i < tries && refused < refusals; i++) {
        int c = i % channels;
        long status = post_message(s, c, accepted[c], len, error);
        if (status == 202) {
            accepted[c]++;
            continue;
        }
        assert_int_equal(status, 507);
        assert_string_equal(error, "storage_full");
        refused++;
    }
    return refused;
}

static void expect_ready(const hs_server *s, long status, const char *reason)
{
    hs_reply r = {0};
    assert_int_equal(hs_get(s, "/readyz", &r), 0);
    assert_int_equal(r.status, status);
    if (reason) {
        char want[64];
        snprintf(want, sizeof want, "\"reason\":\"%s\"", reason);
        assert_non_null(strstr((const char *)r.body, want));
    }
    hs_reply_free(&r);
}

static long long reserve_size(const char *data)
{
    char path[512];
    snprintf(path, sizeof path, "%s/hopper+reserve", data);
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* ---- tests ---- */

/* The defaults follow from --memory-limit, and what the budget holds is
 * in /status and /metrics; the reserve file is there while hopper runs and
 * gone after a clean stop. */
static void test_budget_is_reported_and_reserved(void **state)
{
    const char *dir = *state;
    const char *args[] = {"--memory-limit", "8MiB", "--max-channels", "16", NULL};
    hs_server s;
    hs_start_in_ok(&s, dir, args);
    long long reserve = 8 * MIB + 16 * RESERVE_PER_CHANNEL;
    assert_int_equal(reserve_size(dir), reserve);
    assert_int_equal(hs_budget_value(&s, "memory_limit_bytes"), 8 * MIB);
    assert_int_equal(hs_budget_value(&s, "disk_limit_bytes"), 1024 * MIB); /* the default */
    assert_int_equal(hs_budget_value(&s, "disk_reserved_bytes"), reserve);
    assert_true(hs_budget_value(&s, "filesystem_free_bytes") > 0);
    assert_int_equal(hs_metric_value(&s, "hopper_disk_reserved_bytes", NULL), reserve);
    assert_int_equal(hs_metric_value(&s, "hopper_memory_limit_bytes", NULL), 8 * MIB);
    expect_ready(&s, 200, NULL);

    /* 100 messages of 1000 bytes in memory: the budget counts them */
    long long idle = hs_budget_value(&s, "memory_bytes");
    char error[64];
    for (int n = 0; n < 100; n++)
        assert_int_equal(post_message(&s, 0, n, 1000, error), 202);
    long long used = hs_budget_value(&s, "memory_bytes");
    assert_int_equal(used - idle, hs_status_value(&s, "c0", "memory_bytes"));
    assert_true(used - idle >= 100 * 1000);
    assert_int_equal(hs_metric_value(&s, "hopper_memory_bytes", NULL), used);
    hs_stop_ok(&s);
    assert_int_equal(reserve_size(dir), -1); /* freed for the stop */

    hs_start_in_ok(&s, dir, args);
    expect_all(&s, 0, 100, 1000);
    /* the last response is charged until its completion, which may come
     * just after the client has it */
    double deadline = hs_now() + HS_PATIENCE_MS / 1000.0;
    while (hs_budget_value(&s, "memory_bytes") != idle && hs_now() < deadline)
        usleep(10000);
    assert_int_equal(hs_budget_value(&s, "memory_bytes"), idle);
    hs_stop_ok(&s);
}

/* 500 channels each given 1 MiB under --memory-limit 32MiB: the peak RSS
 * stays within the limit plus the documented overhead (32 MiB), the rest
 * goes to queue files, and every message drains intact and in order. */
static void test_500_channels_stay_within_the_memory_limit(void **state)
{
    enum { CHANNELS = 500, PER_CHANNEL = 16, BODY = 64 * 1024, LIMIT_MIB = 32, OVERHEAD_MIB = 32 };
    const char *dir = *state;
    if (HS_UNDER_SANITIZER)
        skip(); /* the process's memory is the sanitizer's */
    const char *args[] = {"--memory-limit", "32MiB",        "--max-channels", "500", "--disk-limit",
                          "2GiB",           "--file-bytes", "4MiB",           NULL};
    hs_server s;
    hs_start_in_ok(&s, dir, args);
    char error[64];
    for (int c = 0; c < CHANNELS; c++)
        for (int n = 0; n < PER_CHANNEL; n++)
            assert_int_equal(post_message(&s, c, n, BODY, error), 202);
    long long memory = hs_budget_value(&s, "memory_bytes");
    long long disk = hs_budget_value(&s, "disk_bytes");
    long peak = hs_proc_status_kib(s.pid, "VmHWM");
    printf("500 channels x 1 MiB under --memory-limit 32MiB: budget counts %.1f MiB in memory, "
           "%.1f MiB on disk; peak RSS %.1f MiB\n",
           memory / (double)MIB, disk / (double)MIB, peak / 1024.0);
    assert_true(memory <= LIMIT_MIB * MIB);
    assert_true(disk >= (long long)CHANNELS * PER_CHANNEL * BODY - LIMIT_MIB * MIB);
    assert_true(peak > 0 && peak <= (LIMIT_MIB + OVERHEAD_MIB) * 1024);
    for (int c = 0; c < CHANNELS; c++)
        expect_all(&s, c, PER_CHANNEL, BODY);
    peak = hs_proc_status_kib(s.pid, "VmHWM");
    printf("peak RSS once all drained: %.1f MiB\n", peak / 1024.0);
    assert_true(peak <= (LIMIT_MIB + OVERHEAD_MIB) * 1024);
    hs_stop_ok(&s);
}

/* Memory only: once the budget is used up, every channel refuses with 507
 * full, not just the one that filled it; taking messages makes room. */
static void test_memory_only_budget_is_shared_by_all_channels(void **state)
{
    const char *dir = *state;
    const char *args[] = {"--max-disk-files",
                          "0",
                          "--memory-limit",
                          "1MiB",
                          "--memory-bytes",
                          "1MiB",
                          "--max-message-bytes",
                          "64KiB",
                          NULL};
    hs_server s;
    hs_start_in_ok(&s, dir, args);
    char error[64];
    int accepted = 0;
    while (post_message(&s, 0, accepted, 10000, error) == 202)
        accepted++;
    assert_string_equal(error, "full");
    assert_true(accepted >= 90 && accepted <= 105);              /* ~1 MiB of 10 KB messages */
    assert_int_equal(post_message(&s, 1, 0, 10000, error), 507); /* another channel */
    assert_string_equal(error, "full");
    assert_true(hs_budget_value(&s, "memory_bytes") <= 1 * MIB);

    /* two taken: room for the other channel */
    char out[32];
    assert_int_equal(hs_get_text(&s, "c0", "0", out, sizeof out), 200);
    assert_int_equal(hs_get_text(&s, "c0", "0", out, sizeof out), 200);
    assert_int_equal(post_message(&s, 1, 0, 10000, error), 202);
    hs_stop_ok(&s);
}

/* Flood channels until the disk budget is used up: refusals are 507
 * storage_full with their payload, counted by reason, /readyz says
 * disk_limit; a SIGTERM exits 0 and a restart delivers every accepted
 * message once, in order. */
static void test_disk_limit_refuses_with_storage_full_and_loses_nothing(void **state)
{
    enum { CHANNELS = 4, BODY = 8192, REFUSALS = 20, TRIES = 2000 };
    const char *dir = *state;
    /* reserve 1 MiB + 4 x 8 KiB; the files get 2 MiB */
    char limit[32];
    snprintf(limit, sizeof limit, "%lld", 3 * MIB + 4 * RESERVE_PER_CHANNEL);
    const char *args[] = {"--memory-limit",
                          "1MiB",
                          "--max-channels",
                          "4",
                          "--file-bytes",
                          "256KiB",
                          "--disk-limit",
                          limit,
                          NULL};
    hs_server s;
    hs_start_in_ok(&s, dir, args);
    int accepted[CHANNELS] = {0};
    int refused = flood(&s, CHANNELS, accepted, BODY, REFUSALS, TRIES);
    assert_int_equal(refused, REFUSALS);
    long long disk = hs_budget_value(&s, "disk_bytes");
    printf("--disk-limit %s: %d + %d + %d + %d accepted, %d refused; queue files %lld bytes\n",
           limit, accepted[0], accepted[1], accepted[2], accepted[3], refused, disk);
    assert_true(disk <= 2 * MIB);
    assert_true(disk > 2 * MIB - 64 * KIB); /* it was used up, not refused early */
    expect_ready(&s, 503, "disk_limit");
    long long counted = 0;
    for (int c = 0; c < CHANNELS; c++) {
        char name[16];
        channel_name(name, sizeof name, c);
        counted += hs_status_value(&s, name, "rejected_storage_full_total");
    }
    assert_int_equal(counted, REFUSALS);
    /* the log says both, once (its idle loop looks every 10 s) */
    assert_true(hs_log_wait(&s, "20 send(s) refused with 507 storage_full", 15000));
    assert_true(hs_log_wait(&s, "memory budget used up", 0));
    hs_stop_ok(&s);

    hs_start_in_ok(&s, dir, args);
    for (int c = 0; c < CHANNELS; c++)
        expect_all(&s, c, accepted[c], BODY);
    expect_ready(&s, 200, NULL);
    assert_true(hs_budget_value(&s, "disk_bytes") < 64 * KIB); /* files removed as drained */
    hs_stop_ok(&s);
}

/* Fill the file system from this process while hopper holds messages in
 * memory: sends that need the disk are 507 storage_full, /readyz says
 * file_system, and the SIGTERM still writes memory to disk (the reserve
 * made room) and exits 0; after a restart every accepted message comes
 * back once, in order. */
static void test_file_system_filled_by_another_process_loses_nothing(void **state)
{
    enum { CHANNELS = 3, BODY = 8192, REFUSALS = 12, TRIES = 3000 };
    const char *dir = *state;
    char data[400], filler[512];
    tmpfs_data_dir(dir, "12m", data, sizeof data);
    snprintf(filler, sizeof filler, "%s/../filler", data);
    const char *args[] = {"--memory-limit", "2MiB", "--max-channels", "4", "--file-bytes",
                          "256KiB",         NULL};
    hs_server s;
    hs_start_in_ok(&s, data, args);
    /* the channels' memory (512 KiB each) fills first, then their files */
    int accepted[CHANNELS] = {0};
    char error[64];
    for (int i = 0; i < 3 * CHANNELS * 64; i++) {
        int c = i % CHANNELS;
        assert_int_equal(post_message(&s, c, accepted[c]++, BODY, error), 202);
    }
    assert_true(hs_status_value(&s, "c0", "disk_bytes") > 0);
    assert_true(hs_budget_value(&s, "memory_bytes") > 1 * MIB);

    /* another process takes everything that is left */
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    static char page[64 << 10];
    while (write(fd, page, sizeof page) > 0)
        ;
    close(fd);
    expect_ready(&s, 503, "file_system");
    int refused = flood(&s, CHANNELS, accepted, BODY, REFUSALS, TRIES);
    assert_int_equal(refused, REFUSALS);
    long long in_memory = hs_budget_value(&s, "memory_bytes");
    hs_stop_saying(&s, "stopped"); /* exit 0: memory went to disk, into the reserve's room */

    assert_int_equal(unlink(filler), 0);
    hs_start_in_ok(&s, data, args);
    for (int c = 0; c < CHANNELS; c++)
        expect_all(&s, c, accepted[c], BODY);
    printf("tmpfs of 12 MiB filled by another process: %d accepted, %d refused with 507 "
           "storage_full, %.1f MiB of memory written at the stop, all delivered once in order\n",
           accepted[0] + accepted[1] + accepted[2], refused, in_memory / (double)MIB);
    hs_stop_ok(&s);
}

/* No room for the reserve: hopper does not start (exit 1), says how much
 * it needs, and leaves no reserve file behind. */
static void test_start_without_room_for_the_reserve_exits_1(void **state)
{
    const char *dir = *state;
    char data[400];
    tmpfs_data_dir(dir, "4m", data, sizeof data);
    const char *args[] = {"--listen", "127.0.0.1:0",    "--data-dir", data, "--memory-limit",
                          "8MiB",     "--max-channels", "1",          NULL};
    int code = -1;
    char *output = NULL;
    assert_int_equal(hs_run(args, NULL, &code, &output), 0);
    bool ok = code == 1 && strstr(output, "cannot set aside 8396800 bytes") != NULL &&
              strstr(output, "listening on") == NULL;
    if (!ok)
        fprintf(stderr, "exit %d, output:\n%s\n", code, output);
    free(output);
    assert_true(ok);
    assert_int_equal(reserve_size(data), -1);
}

/* A leased batch GET takes as many messages as the budget can hold, not
 * ?max=: fewer, and the others stay at the head of the channel, in order. */
static void test_leased_batch_get_takes_what_the_budget_holds(void **state)
{
    enum { MESSAGES = 40, BODY = 64 * 1024 };
    const char *dir = *state;
    const char *args[] = {
        "--memory-limit", "1MiB", "--memory-bytes", "1MiB", "--max-channels", "2", NULL};
    hs_server s;
    hs_start_in_ok(&s, dir, args);
    char error[64];
    for (int n = 0; n < MESSAGES; n++)
        assert_int_equal(post_message(&s, 0, n, BODY, error), 202);
    hs_reply r = {0};
    assert_int_equal(hs_get(&s, "/channels/c0?max=40&lease=1", &r), 0);
    assert_int_equal(r.status, 200);
    hs_reply_free(&r);
    long long leased = hs_status_value(&s, "c0", "leased");
    printf("a leased GET ?max=40 of 64 KiB messages under --memory-limit 1MiB took %lld\n", leased);
    assert_true(leased >= 1 && leased < 16); /* 16 x 64 KiB would pass 1 MiB */
    assert_true(hs_budget_value(&s, "memory_bytes") <= 1 * MIB + 64 * KIB);
    /* the leases end (1 s): all 40 come back, in order */
    assert_int_equal(hs_await_status_value(&s, "c0", "leased", 0, HS_PATIENCE_MS), 0);
    expect_all(&s, 0, MESSAGES, BODY);
    hs_stop_ok(&s);
}

int main(void)
{
#define T(test) cmocka_unit_test_setup_teardown(test, hs_dir_setup, hs_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_budget_is_reported_and_reserved),
        T(test_500_channels_stay_within_the_memory_limit),
        T(test_memory_only_budget_is_shared_by_all_channels),
        T(test_disk_limit_refuses_with_storage_full_and_loses_nothing),
        T(test_file_system_filled_by_another_process_loses_nothing),
        T(test_start_without_room_for_the_reserve_exits_1),
        T(test_leased_batch_get_takes_what_the_budget_holds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
