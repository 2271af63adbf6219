/* test_dedup.c - duplicates refused (server/dedup.c, idempotency.c): a POST
 * whose key (Idempotency-Key, or --dedup-header's) the channel accepted
 * within --dedup-window is answered 200 duplicate and stores nothing; per
 * channel; a batch is covered by its request's key; a refused POST records
 * no key; concurrent POSTs of one key store one message; keys survive
 * SIGTERM (a channel left empty too) and, with --durable, kill -9; the
 * window's edge; the bound evicts the oldest, counted; the memory budget
 * counts keys; a damaged key log costs its damaged keys, no message, and
 * one that cannot be written its keys at the next start; a
 * forwarded channel refuses duplicates too; --dedup-window 0 keeps none.
 *
 * Each test has its own data directory (a fixture). */
#include "batch_util.h"
#include "harness.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define KEY_LOG ".dedup-keys"

/* POST text to channel with the request header line header ("Name: value",
 * NULL for none). OUT: *r (the caller frees it). */
static void post_keyed(const hs_server *s, const char *channel, const char *text,
                       const char *header, hs_reply *r)
{
    char path[256];
    snprintf(path, sizeof path, "/channels/%s", channel);
    const char *const headers[] = {header, NULL};
    assert_int_equal(
        hs_post_headers(s, path, text, strlen(text), "text/plain", header ? headers : NULL, r), 0);
}

/* POST text with Idempotency-Key: key; the status must be status (202
 * accepted, or 200 duplicate with its header and body). */
static void expect_keyed(const hs_server *s, const char *channel, const char *text, const char *key,
                         long status)
{
    char header[400];
    snprintf(header, sizeof header, "Idempotency-Key: %s", key);
    hs_reply r;
    post_keyed(s, channel, text, header, &r);
    if (r.status != status)
        fprintf(stderr, "POST %s key %s: %ld %s\n", channel, key, r.status, (char *)r.body);
    long got = r.status;
    char dup[16] = "";
    bool has_dup = hs_header(&r, "Hopper-Duplicate", dup, sizeof dup);
    bool body_ok = status != 200 || strcmp((char *)r.body, "{\"status\":\"duplicate\"}") == 0;
    hs_reply_free(&r);
    assert_int_equal(got, status);
    assert_true(body_ok);
    assert_int_equal(has_dup, status == 200);
    if (has_dup)
        assert_string_equal(dup, "true");
}

static void test_same_key_twice_is_stored_once(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    expect_keyed(&s, "orders", "first", "k-1", 202);
    expect_keyed(&s, "orders", "second", "k-1", 200);
    expect_keyed(&s, "orders", "third", "k-2", 202);
    assert_int_equal(hs_status_value(&s, "orders", "messages"), 2);
    assert_int_equal(hs_status_value(&s, "orders", "duplicates_total"), 1);
    assert_int_equal(hs_status_value(&s, "orders", "dedup_keys"), 2);
    assert_int_equal(hs_metric_value(&s, "hopper_messages_duplicate_total", "orders"), 1);
    hs_expect_get(&s, "orders", "0", "first");
    hs_expect_get(&s, "orders", "0", "third");
    /* consumed: the key stays */
    expect_keyed(&s, "orders", "fourth", "k-1", 200);
    hs_expect_nothing(&s, "orders", "0", NULL);
    hs_stop_ok(&s);
}

static void test_channels_are_independent(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    expect_keyed(&s, "a", "one", "same", 202);
    expect_keyed(&s, "b", "one", "same", 202);
    expect_keyed(&s, "a", "one", "same", 200);
    expect_keyed(&s, "b", "one", "same", 200);
    hs_stop_ok(&s);
}

static void test_dedup_header_and_idempotency_key(void **state)
{
    (void)state;
    hs_server s;
    const char *const args[] = {"--dedup-header", "X-GitHub-Delivery", NULL};
    hs_start_ok(&s, args);
    hs_reply r;
    post_keyed(&s, "hooks", "push", "X-GitHub-Delivery: 72d3162e", &r);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    post_keyed(&s, "hooks", "push", "x-github-delivery: 72d3162e", &r); /* any case */
    assert_int_equal(r.status, 200);
    hs_reply_free(&r);
    expect_keyed(&s, "hooks", "push", "72d3162e", 200); /* one key space */
    expect_keyed(&s, "hooks", "push", "other", 202);
    assert_int_equal(hs_status_value(&s, "hooks", "messages"), 2);
    hs_stop_ok(&s);

    /* without the flag, the header is just a header */
    hs_start_ok(&s, NULL);
    for (int i = 0; i < 2; i++) {
        post_keyed(&s, "hooks", "push", "X-GitHub-Delivery: 72d3162e", &r);
        assert_int_equal(r.status, 202);
        hs_reply_free(&r);
    }
    hs_stop_ok(&s);
}

static void test_bad_keys_are_refused(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    char key[300];
    memset(key, 'k', sizeof key);
    key[256] = '\0';
    expect_keyed(&s, "c", "longest", key, 202);
    expect_keyed(&s, "c", "longest", key, 200);
    key[256] = 'k';
    key[257] = '\0';
    char header[400];
    snprintf(header, sizeof header, "Idempotency-Key: %s", key);
    hs_reply r;
    post_keyed(&s, "c", "too long", header, &r);
    assert_true(hs_is_error(&r, 400, "bad_idempotency_key"));
    hs_reply_free(&r);
    post_keyed(&s, "c", "empty", "Idempotency-Key;", &r);
    assert_true(hs_is_error(&r, 400, "bad_idempotency_key"));
    hs_reply_free(&r);
    assert_int_equal(hs_status_value(&s, "c", "messages"), 1);
    hs_stop_ok(&s);
}

static void test_batch_is_covered_by_its_key(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    bu_bytes body = {0};
    bu_numbered_batch(&body, 3);
    const char *const headers[] = {"Idempotency-Key: batch-1", NULL};
    bu_expect_post_body(&s, "batch", &body, BATCH_TYPE, headers, 202, NULL);
    hs_reply r;
    bu_post_body(&s, "batch", &body, BATCH_TYPE, headers, &r);
    char dup[16] = "";
    bool has_dup = hs_header(&r, "Hopper-Duplicate", dup, sizeof dup);
    long status = r.status;
    hs_reply_free(&r);
    assert_int_equal(status, 200);
    assert_true(has_dup);
    bu_bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "batch", "messages"), 3);
    /* the batch's key is the request's: a single POST with it is refused too */
    expect_keyed(&s, "batch", "single", "batch-1", 200);
    hs_stop_ok(&s);
}

static void test_refused_post_records_no_key(void **state)
{
    (void)state;
    hs_server s;
    /* a few messages fill the channel's memory; no queue files */
    const char *const args[] = {
        "--max-message-bytes", "2KiB", "--memory-bytes", "16KiB", "--max-disk-files", "0", NULL};
    hs_start_ok(&s, args);
    char big[3000], filler[1000];
    memset(filler, 'f', sizeof filler - 1);
    filler[sizeof filler - 1] = '\0';
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect_keyed(&s, "r", big, "k-big", 413);
    expect_keyed(&s, "r", "fits", "k-big", 202); /* the 413 left no key */
    long status = 202;
    int sent = 0;
    char key[32];
    while (status == 202 && sent < 50) { /* fill it: the next is 507 */
        snprintf(key, sizeof key, "k-fill-%d", sent++);
        hs_reply r;
        char header[64];
        snprintf(header, sizeof header, "Idempotency-Key: %s", key);
        post_keyed(&s, "r", filler, header, &r);
        status = r.status;
        hs_reply_free(&r);
    }
    assert_int_equal(status, 507);
    hs_expect_get(&s, "r", "0", "fits");
    char got[1000];
    assert_int_equal(hs_get_text(&s, "r", "0", got, sizeof got), 200); /* room for one */
    expect_keyed(&s, "r", filler, key, 202);                           /* the 507 left no key */
    hs_stop_ok(&s);
}

/* ---- concurrency ---- */

#define RACERS 8

typedef struct racer {
    const hs_server *s;
    const char *key;
    pthread_barrier_t *start;
    long status;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    char header[64];
    snprintf(header, sizeof header, "Idempotency-Key: %s", r->key);
    const char *const headers[] = {header, NULL};
    pthread_barrier_wait(r->start);
    hs_reply reply;
    r->status =
        hs_post_headers(r->s, "/channels/race", "same", 4, "text/plain", headers, &reply) == 0
            ? reply.status
            : -1;
    if (r->status >= 0)
        hs_reply_free(&reply);
    return NULL;
}

/* RACERS POSTs of one key at once: exactly one 202, the others 200
 * duplicate or 409 duplicate_pending (the first's outcome not known yet). */
static void race_one_key(const hs_server *s, const char *key)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RACERS);
    racer r[RACERS];
    pthread_t t[RACERS];
    for (int i = 0; i < RACERS; i++) {
        r[i] = (racer){s, key, &start, 0};
        assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    int accepted = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(t[i], NULL);
        accepted += r[i].status == 202;
        assert_true(r[i].status == 202 || r[i].status == 200 || r[i].status == 409);
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(accepted, 1);
}

static void test_concurrent_posts_of_one_key_store_one(void **state)
{
    const char *dir = *state;
    const char *const modes[][2] = {{NULL, NULL}, {"--durable", NULL}};
    for (int m = 0; m < 2; m++) {
        hs_server s;
        hs_start_in_ok(&s, dir, modes[m]);
        long long before = hs_status_value(&s, "race", "messages");
        for (int round = 0; round < 10; round++) {
            char key[32];
            snprintf(key, sizeof key, "race-%d-%d", m, round);
            race_one_key(&s, key);
        }
        assert_int_equal(hs_status_value(&s, "race", "messages") - (before < 0 ? 0 : before), 10);
        hs_stop_ok(&s);
    }
}

/* ---- restarts ---- */

static void test_keys_survive_sigterm_of_an_empty_channel(void **state)
{
    const char *dir = *state;
    hs_server s;
    hs_start_in_ok(&s, dir, NULL);
    expect_keyed(&s, "empty", "once", "k-once", 202);
    hs_expect_get(&s, "empty", "0", "once"); /* the channel holds nothing now */
    hs_stop_ok(&s);

    hs_start_in_ok(&s, dir, NULL);
    assert_true(hs_log_wait(&s, "channel empty recovered: 0 message(s), 0 file(s), 1 key(s)", 0));
    assert_int_equal(hs_status_value(&s, "empty", "dedup_keys"), 1);
    expect_keyed(&s, "empty", "once", "k-once", 200);
    hs_expect_nothing(&s, "empty", "0", NULL);
    hs_stop_ok(&s);
}

static void test_keys_survive_kill_with_durable(void **state)
{
    const char *dir = *state;
    const char *const args[] = {"--durable", NULL};
    hs_server s;
    hs_start_in_ok(&s, dir, args);
    char key[32];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "d-%d", i);
        expect_keyed(&s, "durable", "m", key, 202);
    }
    hs_stop_with(&s, SIGKILL);

    hs_start_in_ok(&s, dir, args);
    assert_int_equal(hs_status_value(&s, "durable", "messages"), 20);
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "d-%d", i);
        expect_keyed(&s, "durable", "m", key, 200);
    }
    assert_int_equal(hs_status_value(&s, "durable", "messages"), 20);
    hs_stop_ok(&s);
}

/* ---- the window and the bound ---- */

static void test_window_edge(void **state)
{
    const char *dir = *state;
    const char *const args[] = {"--dedup-window", "2", NULL};
    hs_server s;
    hs_start_in_ok(&s, dir, args);
    expect_keyed(&s, "w", "one", "k-w", 202);
    double t0 = hs_now(); /* the window began before the 202 came */
    expect_keyed(&s, "w", "two", "k-w", 200);
    if (hs_now() - t0 >= 1.5)
        fail_msg("the machine is too slow for a 2 s window");
    while (hs_now() - t0 < 2.1)
        usleep(50 * 1000);
    expect_keyed(&s, "w", "three", "k-w", 202); /* past it: stored again */
    expect_keyed(&s, "w", "four", "k-w", 200);
    assert_int_equal(hs_status_value(&s, "w", "messages"), 2);
    hs_expect_get(&s, "w", "0", "one");
    hs_expect_get(&s, "w", "0", "three");
    hs_stop_ok(&s);

    /* a key past the window at the start keeps nothing: the channel goes */
    double t1 = hs_now();
    while (hs_now() - t1 < 2.1)
        usleep(50 * 1000);
    hs_start_in_ok(&s, dir, args);
    assert_int_equal(hs_status_value(&s, "w", "messages"), -1);
    expect_keyed(&s, "w", "five", "k-w", 202);
    hs_stop_ok(&s);
}

static void test_full_store_evicts_the_oldest(void **state)
{
    (void)state;
    const char *const args[] = {"--dedup-max-keys", "3", NULL};
    hs_server s;
    hs_start_ok(&s, args);
    expect_keyed(&s, "e", "m", "k1", 202);
    expect_keyed(&s, "e", "m", "k2", 202);
    expect_keyed(&s, "e", "m", "k3", 202);
    assert_int_equal(hs_status_value(&s, "e", "dedup_evicted_total"), 0);
    expect_keyed(&s, "e", "m", "k4", 202); /* k1 goes */
    assert_int_equal(hs_status_value(&s, "e", "dedup_keys"), 3);
    assert_int_equal(hs_status_value(&s, "e", "dedup_evicted_total"), 1);
    assert_int_equal(hs_metric_value(&s, "hopper_dedup_evicted_total", "e"), 1);
    expect_keyed(&s, "e", "m", "k3", 200);
    expect_keyed(&s, "e", "m", "k1", 202); /* forgotten: stored again, and k2 goes */
    expect_keyed(&s, "e", "m", "k2", 202);
    expect_keyed(&s, "e", "m", "k4", 200);
    assert_int_equal(hs_status_value(&s, "e", "dedup_evicted_total"), 3);
    hs_stop_ok(&s);
}

static void test_keys_count_in_the_budget(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "budget", "create", 202);
    hs_expect_get(&s, "budget", "0", "create");
    long long memory = hs_budget_value(&s, "memory_bytes");
    long long disk = hs_budget_value(&s, "disk_bytes");
    char key[201];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "%0200d", i);
        expect_keyed(&s, "budget", "m", key, 202);
        hs_expect_get(&s, "budget", "0", "m");
    }
    long long memory_after = hs_budget_value(&s, "memory_bytes");
    long long disk_after = hs_budget_value(&s, "disk_bytes");
    fprintf(stderr, "100 keys of 200 bytes: memory %lld -> %lld, disk %lld -> %lld\n", memory,
            memory_after, disk, disk_after);
    assert_true(memory_after - memory >= 100 * 200);
    assert_true(disk_after - disk >= 100 * (200 + 14));
    hs_stop_ok(&s);
}

/* ---- a damaged key log ---- */

static void test_damaged_key_log_costs_its_keys_only(void **state)
{
    const char *dir = *state;
    hs_server s;
    hs_start_in_ok(&s, dir, NULL);
    expect_keyed(&s, "dmg", "one", "k-one", 202);
    expect_keyed(&s, "dmg", "two", "k-two", 202);
    hs_stop_ok(&s);

    /* flip a byte of the second record's key: the last byte of the file */
    char path[512];
    snprintf(path, sizeof path, "%s/dmg/%s", dir, KEY_LOG);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, -1, SEEK_END), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, -1, SEEK_END), 0);
    fputc(c ^ 0x55, f);
    fputs("torn", f); /* and a torn record after it */
    assert_int_equal(fclose(f), 0);

    hs_start_in_ok(&s, dir, NULL);
    assert_true(hs_log_wait(&s, "valid record(s) dropped", 0));
    assert_int_equal(hs_status_value(&s, "dmg", "dedup_log_corrupt_total"), 1);
    assert_int_equal(hs_status_value(&s, "dmg", "messages"), 2);
    expect_keyed(&s, "dmg", "one", "k-one", 200);
    expect_keyed(&s, "dmg", "two", "k-two", 202); /* its record was lost */
    hs_expect_get(&s, "dmg", "0", "one");
    hs_expect_get(&s, "dmg", "0", "two");
    hs_expect_get(&s, "dmg", "0", "two");
    hs_stop_ok(&s);

    /* the log was rewritten at the start: no damage the next time */
    hs_start_in_ok(&s, dir, NULL);
    assert_int_equal(hs_status_value(&s, "dmg", "dedup_log_corrupt_total"), 0);
    expect_keyed(&s, "dmg", "two", "k-two", 200);
    hs_stop_ok(&s);
}

static void test_key_log_that_cannot_be_written(void **state)
{
    const char *dir = *state;
    hs_server s;
    hs_start_in_ok(&s, dir, NULL);
    hs_expect_post(&s, "nolog", "plain", 202); /* makes the channel's directory */
    char path[512];
    snprintf(path, sizeof path, "%s/nolog/%s", dir, KEY_LOG);
    assert_int_equal(mkdir(path, 0700), 0); /* in the way of the key log */
    expect_keyed(&s, "nolog", "keyed", "k-mem", 202);
    assert_true(hs_log_wait(&s, "cannot write its key log", HS_PATIENCE_MS));
    expect_keyed(&s, "nolog", "keyed", "k-mem", 200); /* kept in memory */
    hs_stop_ok(&s);

    /* the key is lost with its log; the messages are not */
    hs_start_in_ok(&s, dir, NULL);
    assert_true(hs_log_wait(&s, "cannot read its key log", 0));
    assert_int_equal(hs_status_value(&s, "nolog", "messages"), 2);
    assert_int_equal(hs_status_value(&s, "nolog", "dedup_log_corrupt_total"), 1);
    expect_keyed(&s, "nolog", "again", "k-mem", 202);
    hs_stop_ok(&s);
}

static void test_forwarded_channel_refuses_duplicates(void **state)
{
    (void)state;
    /* nothing listens on port 9 here: the messages wait for their retries */
    const char *const args[] = {"--forward", "fw=http://127.0.0.1:9/hook", NULL};
    hs_server s;
    hs_start_ok(&s, args);
    expect_keyed(&s, "fw", "event", "delivery-1", 202);
    expect_keyed(&s, "fw", "event", "delivery-1", 200);
    assert_int_equal(hs_status_value(&s, "fw", "duplicates_total"), 1);
    hs_stop_ok(&s);
}

static void test_window_zero_keeps_no_keys(void **state)
{
    const char *dir = *state;
    const char *const args[] = {"--dedup-window", "0", NULL};
    hs_server s;
    hs_start_in_ok(&s, dir, args);
    expect_keyed(&s, "off", "m", "k", 202);
    expect_keyed(&s, "off", "m", "k", 202);
    hs_stop_ok(&s);
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/off/%s", dir, KEY_LOG);
    assert_int_not_equal(stat(path, &st), 0);
}

int main(void)
{
#define T(test) cmocka_unit_test_setup_teardown(test, hs_dir_setup, hs_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_same_key_twice_is_stored_once),
        T(test_channels_are_independent),
        T(test_dedup_header_and_idempotency_key),
        T(test_bad_keys_are_refused),
        T(test_batch_is_covered_by_its_key),
        T(test_refused_post_records_no_key),
        T(test_concurrent_posts_of_one_key_store_one),
        T(test_keys_survive_sigterm_of_an_empty_channel),
        T(test_keys_survive_kill_with_durable),
        T(test_window_edge),
        T(test_full_store_evicts_the_oldest),
        T(test_keys_count_in_the_budget),
        T(test_damaged_key_log_costs_its_keys_only),
        T(test_key_log_that_cannot_be_written),
        T(test_forwarded_channel_refuses_duplicates),
        T(test_window_zero_keeps_no_keys),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
