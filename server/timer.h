/* timer.h - the server's one timer: a deadline heap and one thread that
 * calls each item's function once its deadline has passed. Long polls
 * (?wait=) and leases (?lease=) both use it.
 *
 * Items: a timer_item is embedded in the struct it times and stays its
 * owner's; the timer only points at it while it is pending (added and not
 * yet fired or removed) or while its callback runs. An item fires at most
 * once per timer_add().
 *
 * Callbacks run on the timer thread, one at a time, in deadline order,
 * WITHOUT the timer's lock held: a callback may take its owner's locks,
 * call the core, and call timer_add/update/remove on other items.
 *
 * Ownership when a deadline passes: the timer takes the item off the heap
 * first, then calls it. From then on timer_remove() and timer_update()
 * return false for it, so an owner that finds its item no longer pending
 * knows that the callback has it (lease.c relies on that).
 *
 * Locks, in this order when nested: an owner's lock, then the timer's.
 * timer_add, timer_update and timer_remove only take the timer's lock, and
 * may be called with an owner's lock held. timer_cancel() waits for a
 * running callback: never call it holding a lock that callback takes. */
#ifndef HOPPER_SERVER_TIMER_H
#define HOPPER_SERVER_TIMER_H

#include "deadline_heap.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct timer_item timer_item;

/* Called on the timer thread once item's deadline has passed. */
typedef void (*timer_fn)(timer_item *item);

struct timer_item {
    deadline_item deadline; /* first, so a heap entry is its item; the timer's, under its lock */
    timer_fn fn;
};

/* Start and stop the timer thread. timer_stop() returns once no callback
 * runs any more; items still pending never fire and are left to their
 * owners (not pending any more). Call it once nothing adds items. */
bool timer_start(void);
void timer_stop(void);

/* Prepare item (not pending) to call fn. Cannot fail. */
void timer_item_init(timer_item *item, timer_fn fn);

/* Make item (initialised, not pending) fire ms milliseconds from now.
 * False if out of memory: item is not pending, fn will not be called. */
bool timer_add(timer_item *item, uint64_t ms);

/* Move the deadline of a pending item to ms milliseconds from now. False,
 * nothing changed, if item is not pending (its callback has it). */
bool timer_update(timer_item *item, uint64_t ms);

/* Take item off the timer without waiting. True: it was pending and will
 * not fire. False: it was not pending (never added, or its callback has
 * it: that callback may be running right now). */
bool timer_remove(timer_item *item);

/* Take item off the timer, and if its callback is running, wait (on a
 * condition variable) until it has returned. Afterwards the callback of
 * item neither runs nor will run: the owner may free it. Not from item's
 * own callback (it would wait for itself). */
void timer_cancel(timer_item *item);

/* Every pending item whose function is fn fires now (soon after, on the
 * timer thread, in deadline order), as if its deadline had passed. */
void timer_expire_all(timer_fn fn);

#endif
