/* test_dedup_store.c - server/dedup.c and dedup_log.c in process, with
 * times given: a pending key, cancel and commit; the window's exact edge;
 * eviction of the oldest; keys read back from the key log, expired ones
 * dropped and the log removed when none is left; a torn tail, a damaged
 * record and a log of another version; the memory the store counts. */
#include "dedup.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define T0 1796317509000ull /* some wall-clock time, ms */
#define WINDOW 1000

static int setup(void **state)
{
    char *dir = malloc(64);
    snprintf(dir, 64, "/tmp/hopper-dedup-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        free(dir);
        return -1;
    }
    dedup_configure(&(dedup_config){.window_ms = WINDOW, .max_keys = 3, .durable = false});
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    char *dir = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, DEDUP_LOG_NAME);
    unlink(path);
    snprintf(path, sizeof path, "%s/%s", dir, DEDUP_LOG_TMP_NAME);
    unlink(path);
    rmdir(dir);
    free(dir);
    return 0;
}

static dedup_store *open_at(const char *dir, uint64_t now)
{
    dedup_store *s = NULL;
    assert_true(dedup_open(dir, "test", now, &s));
    assert_non_null(s);
    return s;
}

/* Reserve key at now: the result must be want; a new key is then
 * committed at now. */
static void put(dedup_store *s, const char *key, uint64_t now, dedup_result want)
{
    dedup_key *k = NULL;
    assert_int_equal(dedup_reserve(s, key, strlen(key), now, &k), want);
    if (want == DEDUP_NEW)
        dedup_commit(s, k, now);
}

static uint64_t keys_of(dedup_store *s)
{
    dedup_stats st;
    dedup_read(s, &st);
    return st.keys;
}

static void test_pending_then_cancel_or_commit(void **state)
{
    dedup_store *s = open_at(*state, T0);
    dedup_key *k = NULL, *other = NULL;
    assert_int_equal(dedup_reserve(s, "a", 1, T0, &k), DEDUP_NEW);
    assert_int_equal(dedup_reserve(s, "a", 1, T0, &other), DEDUP_PENDING);
    dedup_cancel(s, k); /* refused: no trace */
    assert_int_equal(keys_of(s), 0);
    assert_int_equal(dedup_reserve(s, "a", 1, T0, &k), DEDUP_NEW);
    dedup_commit(s, k, T0);
    put(s, "a", T0 + 1, DEDUP_DUPLICATE);
    dedup_stats st;
    dedup_read(s, &st);
    assert_int_equal(st.keys, 1);
    assert_int_equal(st.duplicates_total, 1);
    dedup_close(s);
}

static void test_window_edge_is_exact(void **state)
{
    dedup_store *s = open_at(*state, T0);
    put(s, "edge", T0, DEDUP_NEW);
    put(s, "edge", T0 + WINDOW - 1, DEDUP_DUPLICATE);
    put(s, "edge", T0 + WINDOW, DEDUP_NEW); /* the window is [accepted, accepted + window) */
    put(s, "edge", T0 + 2 * WINDOW - 1, DEDUP_DUPLICATE);
    /* a clock that went back keeps the key */
    put(s, "edge", T0, DEDUP_DUPLICATE);
    dedup_close(s);
}

static void test_the_oldest_are_evicted(void **state)
{
    dedup_store *s = open_at(*state, T0);
    put(s, "k1", T0, DEDUP_NEW);
    put(s, "k2", T0 + 1, DEDUP_NEW);
    put(s, "k3", T0 + 2, DEDUP_NEW);
    put(s, "k4", T0 + 3, DEDUP_NEW); /* k1 goes */
    dedup_stats st;
    dedup_read(s, &st);
    assert_int_equal(st.keys, 3);
    assert_int_equal(st.evicted_total, 1);
    put(s, "k2", T0 + 4, DEDUP_DUPLICATE);
    put(s, "k1", T0 + 5, DEDUP_NEW); /* k2 goes, though just asked for: order is acceptance */
    put(s, "k2", T0 + 6, DEDUP_NEW);
    put(s, "k4", T0 + 7, DEDUP_DUPLICATE);
    dedup_close(s);
}

static void test_keys_come_back_from_the_log(void **state)
{
    const char *dir = *state;
    dedup_store *s = open_at(dir, T0);
    put(s, "old", T0, DEDUP_NEW);
    put(s, "new", T0 + 600, DEDUP_NEW);
    dedup_close(s);

    s = open_at(dir, T0 + WINDOW + 10); /* "old" is past the window */
    assert_int_equal(keys_of(s), 1);
    put(s, "new", T0 + WINDOW + 20, DEDUP_DUPLICATE);
    put(s, "old", T0 + WINDOW + 20, DEDUP_NEW);
    dedup_close(s);

    s = open_at(dir, T0 + 10 * WINDOW); /* none left: the log goes */
    assert_false(dedup_holds_keys(s, T0 + 10 * WINDOW));
    dedup_close(s);
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, DEDUP_LOG_NAME);
    assert_int_not_equal(stat(path, &st), 0);
}

/* Append bytes[0..len) to the key log of dir, or write them at offset at
 * (at >= 0). */
static void poke(const char *dir, long at, const void *bytes, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, DEDUP_LOG_NAME);
    int fd = open(path, O_WRONLY | (at < 0 ? O_APPEND : 0));
    assert_true(fd >= 0);
    ssize_t n = at < 0 ? write(fd, bytes, len) : pwrite(fd, bytes, len, at);
    assert_int_equal(n, (ssize_t)len);
    close(fd);
}

static void test_a_torn_tail_and_damage(void **state)
{
    const char *dir = *state;
    dedup_store *s = open_at(dir, T0);
    put(s, "first", T0, DEDUP_NEW);
    put(s, "second", T0, DEDUP_NEW);
    dedup_close(s);
    poke(dir, -1, "\x01\x02\x03", 3); /* a record cut short */

    s = open_at(dir, T0 + 1);
    dedup_stats st;
    dedup_read(s, &st);
    assert_int_equal(st.keys, 2);
    assert_int_equal(st.log_corrupt_total, 1);
    dedup_close(s);

    /* the rewrite dropped the tail; now damage the second record's key */
    long second = DEDUP_LOG_HEADER_BYTES + (long)DEDUP_LOG_RECORD_BYTES(5);
    poke(dir, second + DEDUP_LOG_RECORD_HEADER, "X", 1);
    s = open_at(dir, T0 + 2);
    dedup_read(s, &st);
    assert_int_equal(st.keys, 1);
    assert_int_equal(st.log_corrupt_total, 1);
    put(s, "first", T0 + 3, DEDUP_DUPLICATE);
    put(s, "second", T0 + 3, DEDUP_NEW);
    dedup_close(s);

    /* a log of another version: its keys are not read */
    poke(dir, 4, "\x09", 1);
    s = open_at(dir, T0 + 4);
    assert_int_equal(keys_of(s), 0);
    put(s, "first", T0 + 5, DEDUP_NEW);
    dedup_close(s);
}

static void test_memory_is_counted_and_given_back(void **state)
{
    dedup_store *s = open_at(*state, T0);
    dedup_stats st;
    put(s, "warm", T0, DEDUP_NEW); /* the buckets */
    dedup_read(s, &st);
    uint64_t base = st.memory_bytes;
    dedup_key *k;
    char key[DEDUP_MAX_KEY];
    memset(key, 'x', sizeof key);
    assert_int_equal(dedup_reserve(s, key, sizeof key, T0, &k), DEDUP_NEW);
    dedup_read(s, &st);
    assert_true(st.memory_bytes >= base + DEDUP_MAX_KEY);
    dedup_cancel(s, k);
    dedup_read(s, &st);
    assert_int_equal(st.memory_bytes, base);
    dedup_close(s);
}

int main(void)
{
#define T(test) cmocka_unit_test_setup_teardown(test, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_pending_then_cancel_or_commit), T(test_window_edge_is_exact),
        T(test_the_oldest_are_evicted),        T(test_keys_come_back_from_the_log),
        T(test_a_torn_tail_and_damage),        T(test_memory_is_counted_and_given_back),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
