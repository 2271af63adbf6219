/* delay_util.h - what the tests of delayed messages share (test_schedule.c,
 * test_schedule_open.c, test_purge.c), compiled into each: a library clock
 * they move (hop_set_clock()), set-ups that install it, receiving a text,
 * counting delay files. They fail the test through cmocka: main thread
 * only (du_now() is safe anywhere). */
#ifndef HOP_TEST_DELAY_UTIL_H
#define HOP_TEST_DELAY_UTIL_H

#include "test_util.h"

/* Where the clock starts: a window boundary (a multiple of 60 s), the
 * time fixtures/delay-v1/ was written at. */
#define DU_BASE ((uint64_t)28333334 * 60000)

/* The clock now. */
uint64_t du_now(void);
/* Move the clock to DU_BASE + ms; returns once the scheduler has done
 * what is due (hop_clock_moved()). */
void du_move_to(uint64_t ms);

/* cmocka setup and teardown: the clock at DU_BASE and installed, and a
 * tu_dir (tu_dir_setup()); the system clock back, no io hook. */
int du_setup(void **state);
int du_teardown(void **state);

/* The next message of ch is text; ch has no message ready. */
void du_recv_text(hop_channel *ch, const char *text);
void du_recv_none(hop_channel *ch);
/* Delay files in d's channel directory. */
int du_count_delay_files(const tu_dir *d);

#endif
