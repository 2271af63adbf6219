/* clock.c - the wall clock the library reads for due times, replaceable
 * so that tests move time instead of sleeping (hop_set_clock()). */
#include "hopper/hopper.h"

#include <stdatomic.h>
#include <time.h>

/* The clock in use, swapped as one pair so a reader never mixes a new
 * function with an old argument. */
typedef struct clock_source {
    hop_clock_fn fn;
    void *arg;
} clock_source;

static clock_source sources[2];
static _Atomic int current = -1; /* -1: the system clock */

static uint64_t system_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void hop_set_clock(hop_clock_fn fn, void *arg)
{
    if (fn == NULL) {
        atomic_store(&current, -1);
        return;
    }
    int next = atomic_load(&current) == 0 ? 1 : 0;
    sources[next] = (clock_source){fn, arg};
    atomic_store(&current, next);
}

uint64_t hop_now_ms(void)
{
    int i = atomic_load(&current);
    return i < 0 ? system_now_ms() : sources[i].fn(sources[i].arg);
}
