/* thread_conns.c - connections counted by the HTTP thread serving them.
 *
 * libmicrohttpd's thread pool gives each connection to one thread, which
 * accepts it, serves it and closes it. A durable POST may make its sync on
 * that thread rather than hand it to a sync thread and back (one thread
 * hop less for a lone sender), but only if nothing else waits on the
 * thread meanwhile: with eight senders all served by one thread, each
 * sender blocking it for its own sync would make every POST cost a whole
 * sync, one after another, where handing them on lets one sync serve all
 * eight.
 *
 * A connection remembers its thread's slot (socket_context), so that a
 * close on another thread (the daemon's stop) still counts down the right
 * one. Threads beyond the slots share them: they then count more than
 * their own, which only makes them lead less often. */
#include "thread_conns.h"

#include <stdatomic.h>
#include <stdint.h>

#define SLOTS 64

static atomic_uint counts[SLOTS];
static atomic_uint next_slot;
static _Thread_local unsigned my_slot; /* slot + 1; 0: none yet */

static unsigned slot(void)
{
    if (my_slot == 0)
        my_slot = atomic_fetch_add(&next_slot, 1) % SLOTS + 1;
    return my_slot;
}

void thread_conns_started(void **socket_context)
{
    unsigned s = slot();
    *socket_context = (void *)(uintptr_t)s;
    atomic_fetch_add(&counts[s - 1], 1);
}

void thread_conns_closed(void *const *socket_context)
{
    unsigned s = (unsigned)(uintptr_t)*socket_context;
    if (s > 0)
        atomic_fetch_sub(&counts[s - 1], 1);
}

bool thread_conns_alone(void)
{
    return atomic_load(&counts[slot() - 1]) <= 1;
}
