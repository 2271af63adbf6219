/* scheduler.h - the library's one thread for work due at a time of the
 * wall clock (hop_now_ms()): each channel with delayed messages has an
 * entry here, and its run function is called when the entry is due. The
 * scheduler knows nothing of channels: it calls what it was handed. */
#ifndef HOP_SCHEDULER_H
#define HOP_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#define HOP__NEVER UINT64_MAX

/* An entry: the owner's, registered from hop__scheduler_add() to
 * hop__scheduler_remove(). */
typedef struct hop__sched_entry {
    /* run(arg, now_ms) is called on the scheduler thread, without the
     * scheduler's lock, once due_ms <= now_ms; it must set the next due
     * time with hop__scheduler_set() (or it is called again at once). */
    void (*run)(void *arg, uint64_t now_ms);
    void *arg;
    uint64_t due_ms;                      /* scheduler lock; HOP__NEVER: nothing to do */
    struct hop__sched_entry *prev, *next; /* scheduler lock */
    bool busy;                            /* scheduler lock: run is running */
} hop__sched_entry;

/* Register e (run, arg set; due HOP__NEVER), starting the thread on first
 * use. False if the thread could not start (errno set): e is not
 * registered. */
bool hop__scheduler_add(hop__sched_entry *e);
/* Make e due at due_ms (HOP__NEVER: nothing to do); the thread wakes if it
 * slept longer. Any thread, the entry's run too. */
void hop__scheduler_set(hop__sched_entry *e, uint64_t due_ms);
/* Unregister e, waiting for a run of it in progress to end: once this
 * returns run is never called again. Not from e's own run. */
void hop__scheduler_remove(hop__sched_entry *e);

#endif
