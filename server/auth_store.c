/* auth_store.c - the token set in force and its reload (see auth_store.h). */
#include "auth_store.h"

#include <pthread.h>

static struct {
    pthread_mutex_t lock; /* guards current (the pointer, not the set) */
    auth_set *current;    /* holds one reference; NULL when auth is off */
    const char *path;
} store = {.lock = PTHREAD_MUTEX_INITIALIZER};

bool auth_store_open(const char *path, char *why, size_t why_size)
{
    auth_set *set;
    if (!auth_file_load(path, &set, why, why_size))
        return false;
    store.path = path;
    pthread_mutex_lock(&store.lock);
    store.current = set;
    pthread_mutex_unlock(&store.lock);
    return true;
}

bool auth_store_enabled(void)
{
    return store.path != NULL;
}

bool auth_store_reload(size_t *tokens, char *why, size_t why_size)
{
    auth_set *set;
    if (store.path == NULL || !auth_file_load(store.path, &set, why, why_size))
        return false;
    *tokens = set->token_count;
    pthread_mutex_lock(&store.lock);
    auth_set *old = store.current;
    store.current = set;
    pthread_mutex_unlock(&store.lock);
    auth_store_release(old); /* freed here, or by the last request that holds it */
    return true;
}

auth_set *auth_store_acquire(void)
{
    pthread_mutex_lock(&store.lock);
    auth_set *set = store.current;
    if (set)
        atomic_fetch_add(&set->refs, 1);
    pthread_mutex_unlock(&store.lock);
    return set;
}

void auth_store_release(auth_set *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        auth_set_free(s);
}

void auth_store_close(void)
{
    pthread_mutex_lock(&store.lock);
    auth_set *old = store.current;
    store.current = NULL;
    pthread_mutex_unlock(&store.lock);
    auth_store_release(old);
}
