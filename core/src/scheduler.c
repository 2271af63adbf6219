/* scheduler.c - one library-wide thread that sleeps until the earliest
 * entry is due on the wall clock (hop_now_ms()), runs the due entries,
 * and sleeps again. Woken early by an entry made due sooner and by
 * hop_clock_moved(). A thread for the library rather than one a channel:
 * a server may hold thousands of channels with delayed messages. */
#include "scheduler.h"

#include "deadline.h"
#include "hopper/hopper.h"

#include <pthread.h>
#include <time.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;       /* lock: something is due sooner, or the clock moved */
static pthread_cond_t idle;       /* lock: a run ended, or a pass found nothing due */
static hop__sched_entry *entries; /* lock */
static bool started;              /* lock */
static uint64_t moved_gen;        /* lock: hop_clock_moved() calls */
static uint64_t passed_gen;       /* lock: the moves a finished pass had seen */

/* The first entry due at now and not running, or NULL. Lock held. */
static hop__sched_entry *first_due(uint64_t now, uint64_t *earliest)
{
    *earliest = HOP__NEVER;
    for (hop__sched_entry *e = entries; e; e = e->next) {
        if (e->busy)
            continue;
        if (e->due_ms <= now)
            return e;
        if (e->due_ms < *earliest)
            *earliest = e->due_ms;
    }
    return NULL;
}

/* Sleep until earliest (wall clock ms, read as now), or a wake-up. */
static void sleep_until(uint64_t earliest, uint64_t now)
{
    if (earliest == HOP__NEVER) {
        pthread_cond_wait(&wake, &lock);
        return;
    }
    struct timespec ts;
    hop__deadline_in(&ts, (earliest - now) * 1000000u);
    pthread_cond_timedwait(&wake, &lock, &ts);
}

static void *scheduler_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&lock);
    for (;;) {
        uint64_t gen = moved_gen, earliest;
        uint64_t now = hop_now_ms();
        hop__sched_entry *e = first_due(now, &earliest);
        if (e) {
            e->busy = true;
            pthread_mutex_unlock(&lock);
            e->run(e->arg, now);
            pthread_mutex_lock(&lock);
            e->busy = false;
            pthread_cond_broadcast(&idle);
            continue;
        }
        passed_gen = gen;
        pthread_cond_broadcast(&idle);
        sleep_until(earliest, now);
    }
    return NULL;
}

/* Start the thread. Lock held. */
static bool start(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wake, &attr);
    pthread_cond_init(&idle, NULL);
    pthread_condattr_destroy(&attr);
    pthread_t t;
    if (pthread_create(&t, NULL, scheduler_main, NULL) != 0)
        return false;
    pthread_detach(t);
    started = true;
    return true;
}

bool hop__scheduler_add(hop__sched_entry *e)
{
    pthread_mutex_lock(&lock);
    if (!started && !start()) {
        pthread_mutex_unlock(&lock);
        return false;
    }
    e->due_ms = HOP__NEVER;
    e->busy = false;
    e->prev = NULL;
    e->next = entries;
    if (entries)
        entries->prev = e;
    entries = e;
    pthread_mutex_unlock(&lock);
    return true;
}

void hop__scheduler_set(hop__sched_entry *e, uint64_t due_ms)
{
    pthread_mutex_lock(&lock);
    if (due_ms < e->due_ms)
        pthread_cond_signal(&wake);
    e->due_ms = due_ms;
    pthread_mutex_unlock(&lock);
}

void hop__scheduler_remove(hop__sched_entry *e)
{
    pthread_mutex_lock(&lock);
    while (e->busy)
        pthread_cond_wait(&idle, &lock);
    if (e->prev)
        e->prev->next = e->next;
    else
        entries = e->next;
    if (e->next)
        e->next->prev = e->prev;
    pthread_mutex_unlock(&lock);
}

void hop_clock_moved(void)
{
    pthread_mutex_lock(&lock);
    if (started) {
        uint64_t target = ++moved_gen;
        pthread_cond_signal(&wake);
        while (passed_gen < target)
            pthread_cond_wait(&idle, &lock);
    }
    pthread_mutex_unlock(&lock);
}
