/* deadline.h - the monotonic clock the library's timed waits use (their
 * condition variables are made with CLOCK_MONOTONIC): now, and a deadline
 * so far from now for pthread_cond_timedwait(). */
#ifndef HOP_DEADLINE_H
#define HOP_DEADLINE_H

#include <stdint.h>
#include <time.h>

/* Nanoseconds on CLOCK_MONOTONIC. */
static inline uint64_t hop__monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* OUT: *ts, ns nanoseconds from now on CLOCK_MONOTONIC. */
static inline void hop__deadline_in(struct timespec *ts, uint64_t ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ns / 1000000000u);
    ts->tv_nsec += (long)(ns % 1000000000u);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

#endif
