/* timer.c - the one timer thread and its deadline heap (see timer.h for
 * who owns an item when, and the lock order). */
#include "timer.h"

#include <pthread.h>
#include <time.h>

static struct {
    pthread_mutex_t lock;      /* guards everything below */
    pthread_cond_t changed;    /* the earliest deadline changed, or quit */
    pthread_cond_t finished;   /* the running callback returned */
    deadline_heap heap;        /* the pending items */
    const timer_item *running; /* whose callback runs now, or NULL */
    bool quit;
    bool started;
    pthread_t thread;
} timer = {.lock = PTHREAD_MUTEX_INITIALIZER, .finished = PTHREAD_COND_INITIALIZER};

/* The item of a heap entry: the deadline is its first member. */
static timer_item *item_of(deadline_item *d)
{
    return (timer_item *)d;
}

/* Call item's function without the lock (taken off the heap already): the
 * callback may take its owner's locks, and those may be held by someone
 * adding to the timer. Called, and returns, with the lock held. */
static void fire(timer_item *item)
{
    timer.running = item;
    pthread_mutex_unlock(&timer.lock);
    item->fn(item); /* item may be freed from here on */
    pthread_mutex_lock(&timer.lock);
    timer.running = NULL;
    pthread_cond_broadcast(&timer.finished);
}

static void wait_until(uint64_t at_ms)
{
    struct timespec ts = {.tv_sec = (time_t)(at_ms / 1000),
                          .tv_nsec = (long)(at_ms % 1000) * 1000000L};
    pthread_cond_timedwait(&timer.changed, &timer.lock, &ts);
}

static void *timer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&timer.lock);
    while (!timer.quit) {
        deadline_item *first = deadline_heap_first(&timer.heap);
        if (first == NULL) {
            pthread_cond_wait(&timer.changed, &timer.lock);
        } else if (first->deadline_ms > deadline_now_ms()) {
            wait_until(first->deadline_ms);
        } else {
            deadline_heap_remove(&timer.heap, first);
            fire(item_of(first));
        }
    }
    pthread_mutex_unlock(&timer.lock);
    return NULL;
}

bool timer_start(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* deadlines ignore clock changes */
    pthread_cond_init(&timer.changed, &attr);
    pthread_condattr_destroy(&attr);
    timer.quit = false;
    if (pthread_create(&timer.thread, NULL, timer_main, NULL) != 0) {
        pthread_cond_destroy(&timer.changed);
        return false;
    }
    timer.started = true;
    return true;
}

void timer_stop(void)
{
    if (!timer.started)
        return;
    pthread_mutex_lock(&timer.lock);
    timer.quit = true;
    pthread_cond_signal(&timer.changed);
    pthread_mutex_unlock(&timer.lock);
    pthread_join(timer.thread, NULL);
    timer.started = false;
    deadline_heap_clear(&timer.heap); /* what was pending is its owners', not pending */
    pthread_cond_destroy(&timer.changed);
}

void timer_item_init(timer_item *item, timer_fn fn)
{
    item->deadline = (deadline_item){0, DEADLINE_NOT_IN_HEAP};
    item->fn = fn;
}

bool timer_add(timer_item *item, uint64_t ms)
{
    pthread_mutex_lock(&timer.lock);
    item->deadline.deadline_ms = deadline_now_ms() + ms;
    bool added = deadline_heap_push(&timer.heap, &item->deadline);
    if (added && item->deadline.index == 0)
        pthread_cond_signal(&timer.changed);
    pthread_mutex_unlock(&timer.lock);
    return added;
}

bool timer_update(timer_item *item, uint64_t ms)
{
    pthread_mutex_lock(&timer.lock);
    bool pending = item->deadline.index != DEADLINE_NOT_IN_HEAP;
    if (pending) {
        item->deadline.deadline_ms = deadline_now_ms() + ms;
        deadline_heap_update(&timer.heap, &item->deadline);
        pthread_cond_signal(&timer.changed);
    }
    pthread_mutex_unlock(&timer.lock);
    return pending;
}

bool timer_remove(timer_item *item)
{
    pthread_mutex_lock(&timer.lock);
    bool pending = item->deadline.index != DEADLINE_NOT_IN_HEAP;
    deadline_heap_remove(&timer.heap, &item->deadline);
    pthread_mutex_unlock(&timer.lock);
    return pending;
}

void timer_cancel(timer_item *item)
{
    pthread_mutex_lock(&timer.lock);
    deadline_heap_remove(&timer.heap, &item->deadline);
    while (timer.running == item)
        pthread_cond_wait(&timer.finished, &timer.lock);
    pthread_mutex_unlock(&timer.lock);
}

void timer_expire_all(timer_fn fn)
{
    pthread_mutex_lock(&timer.lock);
    /* One pass from the root: an item moved up by deadline_heap_update()
     * only swaps places with its ancestors, which come before it, so the
     * items not yet looked at all stay behind the one at i. */
    for (size_t i = 0; i < timer.heap.count; i++) {
        timer_item *item = item_of(timer.heap.items[i]);
        if (item->fn == fn && item->deadline.deadline_ms > 0) {
            item->deadline.deadline_ms = 0;
            deadline_heap_update(&timer.heap, &item->deadline);
        }
    }
    pthread_cond_signal(&timer.changed);
    pthread_mutex_unlock(&timer.lock);
}
