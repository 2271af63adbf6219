/* test_schedule_open.c - tests of core/src/schedule_open.c: a channel's
 * delay files found at open, among them those an earlier release wrote
 * (the fixture fixtures/delay-v1/, see fixtures/README.md): counted,
 * handed on when due, never early, nothing lost or handed on twice. */
#include "test_util.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* When fixtures/delay-v1/ was written (make-delay-v1.c's BASE). */
#define BASE ((uint64_t)28333334 * 60000)

static _Atomic uint64_t fake_now;

static uint64_t fake_clock(void *arg)
{
    (void)arg;
    return atomic_load(&fake_now);
}

static void move_to(uint64_t ms)
{
    atomic_store(&fake_now, BASE + ms);
    hop_clock_moved();
}

static int setup(void **state)
{
    atomic_store(&fake_now, BASE);
    hop_set_clock(fake_clock, NULL);
    return tu_dir_setup(state);
}

static int teardown(void **state)
{
    hop_set_clock(NULL, NULL);
    return tu_dir_teardown(state);
}

static void recv_text(hop_channel *ch, const char *text)
{
    void *data;
    size_t len;
    hop_err err = hop_recv(ch, 0, &data, &len);
    if (err != HOP_OK)
        fail_msg("expected \"%s\", got %s", text, hop_err_name(err));
    if (len != strlen(text) || memcmp(data, text, len) != 0)
        fail_msg("expected \"%s\", got \"%.*s\"", text, (int)len, (char *)data);
    hop_free(data);
}

static void recv_none(hop_channel *ch)
{
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_TIMEOUT);
}

static int count_delay_files(const tu_dir *d)
{
    DIR *dir = opendir(d->chan);
    assert_non_null(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        n += strncmp(e->d_name, "delay-", 6) == 0;
    closedir(dir);
    return n;
}

/* The fixture's channel in d's data directory (its "ch" replaced). */
static void copy_fixture(const tu_dir *d, const char *fixture)
{
    char cmd[3 * PATH_MAX];
    tu_rmtree(d->chan);
    snprintf(cmd, sizeof cmd, "cp -R '%s/%s/ch' '%s'", FIXTURES_DIR, fixture, d->chan);
    assert_int_equal(system(cmd), 0);
}

/* Everything the version-1 fixture holds comes back once, when due, in
 * order; the message a crash handed on just before its mark (p1) is not
 * handed on again. */
static void test_delay_v1_opens(void **state)
{
    tu_dir *d = *state;
    copy_fixture(d, "delay-v1");
    move_to(100);
    hop_channel *ch = tu_open(d, tu_limits(1 << 20, 1 << 20, 16, 4096));
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.delayed, 9); /* r1 w1 w2 w3 s1 s2 s3 far p2 */
    assert_int_equal(s.messages, 2);
    recv_text(ch, "q1");
    recv_text(ch, "p1");
    recv_none(ch);
    move_to(549);
    recv_none(ch);
    move_to(550);
    recv_text(ch, "s1");
    recv_text(ch, "s2");
    recv_text(ch, "s3");
    recv_none(ch);
    move_to(750);
    recv_text(ch, "r1");
    move_to(850);
    recv_text(ch, "p2");
    recv_none(ch);
    move_to(61049);
    recv_none(ch);
    move_to(61050);
    recv_text(ch, "w1");
    recv_text(ch, "w2");
    recv_none(ch);
    move_to(120049);
    recv_text(ch, "w3");
    move_to(3600049);
    recv_none(ch);
    move_to(3600050);
    recv_text(ch, "far");
    recv_none(ch);
    s = tu_stats(ch);
    assert_int_equal(s.delayed, 0);
    assert_int_equal(s.delayed_bytes, 0);
    assert_int_equal(count_delay_files(d), 0);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* Closed halfway (the version-1 fine files handed on, a window split) and
 * opened again: the rest comes back once, in order. */
static void test_delay_v1_reopened_halfway(void **state)
{
    tu_dir *d = *state;
    copy_fixture(d, "delay-v1");
    move_to(600);
    hop_channel *ch = tu_open(d, tu_limits(1 << 20, 1 << 20, 16, 4096));
    move_to(600); /* returns once the scheduler has handed on what is due */
    recv_text(ch, "q1");
    recv_text(ch, "p1");
    recv_text(ch, "s1");
    move_to(59500); /* the window of 60000 is split */
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    ch = tu_open(d, tu_limits(1 << 20, 1 << 20, 16, 4096));
    assert_int_equal(tu_stats(ch).delayed, 4); /* w1 w2 w3 far */
    move_to(59500);
    recv_text(ch, "r1"); /* given back to the head at 750 */
    recv_text(ch, "s2");
    recv_text(ch, "s3");
    recv_text(ch, "p2");
    recv_none(ch);
    move_to(119999);
    recv_text(ch, "w1");
    recv_text(ch, "w2");
    recv_none(ch);
    move_to(120050);
    recv_text(ch, "w3");
    recv_none(ch);
    assert_int_equal(tu_stats(ch).delayed, 1);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delay_v1_opens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delay_v1_reopened_halfway, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
