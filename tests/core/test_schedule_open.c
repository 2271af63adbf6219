/* test_schedule_open.c - tests of core/src/schedule_open.c: a channel's
 * delay files found at open, among them those an earlier release wrote
 * (the fixture fixtures/delay-v1/, see fixtures/README.md): counted,
 * handed on when due, never early, nothing lost or handed on twice. */
#include "delay_util.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE DU_BASE

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
    du_move_to(100);
    hop_channel *ch = tu_open(d, tu_limits(1 << 20, 1 << 20, 16, 4096));
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.delayed, 9); /* r1 w1 w2 w3 s1 s2 s3 far p2 */
    assert_int_equal(s.messages, 2);
    du_recv_text(ch, "q1");
    du_recv_text(ch, "p1");
    du_recv_none(ch);
    du_move_to(549);
    du_recv_none(ch);
    du_move_to(550);
    du_recv_text(ch, "s1");
    du_recv_text(ch, "s2");
    du_recv_text(ch, "s3");
    du_recv_none(ch);
    du_move_to(750);
    du_recv_text(ch, "r1");
    du_move_to(850);
    du_recv_text(ch, "p2");
    du_recv_none(ch);
    du_move_to(61049);
    du_recv_none(ch);
    du_move_to(61050);
    du_recv_text(ch, "w1");
    du_recv_text(ch, "w2");
    du_recv_none(ch);
    du_move_to(120049);
    du_recv_text(ch, "w3");
    du_move_to(3600049);
    du_recv_none(ch);
    du_move_to(3600050);
    du_recv_text(ch, "far");
    du_recv_none(ch);
    s = tu_stats(ch);
    assert_int_equal(s.delayed, 0);
    assert_int_equal(s.delayed_bytes, 0);
    assert_int_equal(du_count_delay_files(d), 0);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* Closed halfway (the version-1 fine files handed on, a window split) and
 * opened again: the rest comes back once, in order. */
static void test_delay_v1_reopened_halfway(void **state)
{
    tu_dir *d = *state;
    copy_fixture(d, "delay-v1");
    du_move_to(600);
    hop_channel *ch = tu_open(d, tu_limits(1 << 20, 1 << 20, 16, 4096));
    du_move_to(600); /* returns once the scheduler has handed on what is due */
    du_recv_text(ch, "q1");
    du_recv_text(ch, "p1");
    du_recv_text(ch, "s1");
    du_move_to(59500); /* the window of 60000 is split */
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    ch = tu_open(d, tu_limits(1 << 20, 1 << 20, 16, 4096));
    assert_int_equal(tu_stats(ch).delayed, 4); /* w1 w2 w3 far */
    du_move_to(59500);
    du_recv_text(ch, "r1"); /* given back to the head at 750 */
    du_recv_text(ch, "s2");
    du_recv_text(ch, "s3");
    du_recv_text(ch, "p2");
    du_recv_none(ch);
    du_move_to(119999);
    du_recv_text(ch, "w1");
    du_recv_text(ch, "w2");
    du_recv_none(ch);
    du_move_to(120050);
    du_recv_text(ch, "w3");
    du_recv_none(ch);
    assert_int_equal(tu_stats(ch).delayed, 1);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delay_v1_opens, du_setup, du_teardown),
        cmocka_unit_test_setup_teardown(test_delay_v1_reopened_halfway, du_setup, du_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
