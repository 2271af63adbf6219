/* syncer.c - the library's sync threads. Durable sends wait for a sync
 * (sync.c); rather than have each waiting sender sync, or each durable
 * channel own a thread, a few threads serve every durable channel that has
 * requests waiting, one channel each at a time, so syncs of different
 * channels overlap. They run while at least one durable channel is open. */
#include "channel_state.h"

#include <pthread.h>

/* Syncs are I/O, not CPU: a few threads keep several devices (or one
 * device's queue) busy without a thread per channel. */
#define SYNC_THREADS 4

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work;
    hop_channel *head, *tail; /* channels waiting for a thread */
    size_t users;             /* open durable channels */
    bool quit;
    pthread_t threads[SYNC_THREADS];
    size_t running;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER};

/* Held across starting and stopping the threads, so that an open racing
 * with the last close waits for the old threads to be joined. */
static pthread_mutex_t lifecycle = PTHREAD_MUTEX_INITIALIZER;

/* A forked child has none of the parent's threads: it starts with no pool,
 * so that its own durable channels start one. (Channels the parent opened
 * are the parent's; the child must not use them.) */
static void forget_in_child(void)
{
    pthread_mutex_init(&lifecycle, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.work, NULL);
    pool.head = pool.tail = NULL;
    pool.users = 0;
    pool.running = 0;
    pool.quit = false;
}

static pthread_once_t at_fork = PTHREAD_ONCE_INIT;

static void register_at_fork(void)
{
    pthread_atfork(NULL, NULL, forget_in_child);
}

static void *sync_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.head == NULL && !pool.quit)
            pthread_cond_wait(&pool.work, &pool.lock);
        if (pool.head == NULL)
            break; /* quitting, and nothing left */
        hop_channel *ch = pool.head;
        pool.head = ch->sync_next;
        if (pool.head == NULL)
            pool.tail = NULL;
        ch->sync_next = NULL;
        pthread_mutex_unlock(&pool.lock);
        hop__sync_run(ch);
        pthread_mutex_lock(&pool.lock);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

hop_err hop__syncer_acquire(void)
{
    pthread_once(&at_fork, register_at_fork);
    pthread_mutex_lock(&lifecycle);
    pthread_mutex_lock(&pool.lock);
    hop_err err = HOP_OK;
    if (pool.users == 0) {
        pool.quit = false;
        for (pool.running = 0; pool.running < SYNC_THREADS; pool.running++)
            if (pthread_create(&pool.threads[pool.running], NULL, sync_thread, NULL) != 0)
                break;
        if (pool.running == 0)
            err = HOP_NOMEM;
    }
    if (err == HOP_OK)
        pool.users++;
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&lifecycle);
    return err;
}

void hop__syncer_release(void)
{
    pthread_mutex_lock(&lifecycle);
    pthread_mutex_lock(&pool.lock);
    if (pool.users == 0 || --pool.users > 0) { /* 0: a parent's channel, in a child */
        pthread_mutex_unlock(&pool.lock);
        pthread_mutex_unlock(&lifecycle);
        return;
    }
    pool.quit = true;
    pthread_cond_broadcast(&pool.work);
    size_t n = pool.running;
    pthread_mutex_unlock(&pool.lock);
    for (size_t i = 0; i < n; i++)
        pthread_join(pool.threads[i], NULL);
    pthread_mutex_lock(&pool.lock);
    pool.running = 0;
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&lifecycle);
}

void hop__syncer_queue(hop_channel *ch)
{
    pthread_mutex_lock(&pool.lock);
    ch->sync_next = NULL;
    if (pool.tail)
        pool.tail->sync_next = ch;
    else
        pool.head = ch;
    pool.tail = ch;
    pthread_cond_signal(&pool.work);
    pthread_mutex_unlock(&pool.lock);
}
